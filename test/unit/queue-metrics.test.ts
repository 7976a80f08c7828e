import client from 'prom-client';
import { temporal } from '@temporalio/proto';
import { queueSample, startQueueMetrics, type QueueMetricsOptions } from '../../worker/queue-metrics';

// Answers as the gRPC client decodes them (counts and durations as Long).
const answer = (o: object) => temporal.api.workflowservice.v1.DescribeTaskQueueResponse.fromObject(o);

// The backlog reader's own logic, with a stand-in for Temporal's workflowService: answers are read
// right (Long counts, Duration ages, empty stats), and Temporal being down neither throws nor
// leaves stale numbers behind.

test('a DescribeTaskQueue answer becomes backlog, age in seconds, rates and pollers; absent stats are zero', () => {
  expect(
    queueSample(answer({ stats: { approximateBacklogCount: 7, approximateBacklogAge: { seconds: 3, nanos: 500_000_000 }, tasksAddRate: 1.5, tasksDispatchRate: 0.25 }, pollers: [{}, {}] })),
  ).toEqual({ backlog: 7, backlogAgeSeconds: 3.5, addRate: 1.5, dispatchRate: 0.25, pollers: 2 });
  expect(queueSample(answer({ stats: { approximateBacklogAge: {} }, pollers: [] }))).toEqual({ backlog: 0, backlogAgeSeconds: 0, addRate: 0, dispatchRate: 0, pollers: 0 });
  expect(queueSample({})).toEqual({ backlog: 0, backlogAgeSeconds: 0, addRate: 0, dispatchRate: 0, pollers: 0 });
});

test('Temporal down: no throw, up = 0, errors counted, no backlog series; back up: the series return', async () => {
  const registry = new client.Registry();
  let down = true;
  let ticks = 0; // reads begun (each starts with q-a)
  const warnings: unknown[] = [];
  const connection = {
    withDeadline: <T>(_d: number | Date, fn: () => Promise<T>) => fn(),
    workflowService: {
      describeTaskQueue: async (req: { taskQueue?: { name?: string } | null; taskQueueType?: number | null }) => {
        if (req.taskQueue?.name === 'q-a' && req.taskQueueType === 1) ticks++;
        if (down) throw new Error('14 UNAVAILABLE: connection refused');
        return answer({ stats: { approximateBacklogCount: req.taskQueue?.name === 'q-a' ? 4 : 0, approximateBacklogAge: { seconds: 2 } }, pollers: [] });
      },
    },
  } as unknown as QueueMetricsOptions['connection'];
  const stop = startQueueMetrics({ connection, namespace: 'ns', queues: ['q-a', 'q-b'], workers: [], intervalMs: 20, log: { warn: (...a: unknown[]) => warnings.push(a), info: () => undefined }, registry });
  try {
    const value = async (name: string, labels: Record<string, string> = {}) =>
      (await registry.getSingleMetric(name)!.get()).values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value;
    // Two reads begun after a change means one whole read saw it (no fixed sleeps: the machine may be slow).
    const twoMoreReads = async () => {
      const target = ticks + 2;
      const deadline = Date.now() + 10_000;
      while (ticks < target && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(ticks).toBeGreaterThanOrEqual(target);
    };
    await twoMoreReads();
    expect(await value('dotgit_task_queue_stats_up')).toBe(0);
    expect(await value('dotgit_task_queue_stats_errors_total')).toBeGreaterThanOrEqual(1);
    expect(await value('dotgit_task_queue_backlog', { queue: 'q-a', type: 'workflow' })).toBeUndefined();
    expect(warnings).toHaveLength(1); // once per outage, not once per read
    down = false;
    await twoMoreReads();
    expect(await value('dotgit_task_queue_stats_up')).toBe(1);
    expect(await value('dotgit_task_queue_backlog', { queue: 'q-a', type: 'workflow' })).toBe(4);
    expect(await value('dotgit_task_queue_backlog', { queue: 'q-a', type: 'activity' })).toBe(4);
    expect(await value('dotgit_task_queue_backlog', { queue: 'q-b', type: 'activity' })).toBe(0);
    expect(await value('dotgit_task_queue_backlog_age_seconds', { queue: 'q-a', type: 'workflow' })).toBe(2);
    down = true;
    await twoMoreReads();
    // Down again: the old numbers go, so nothing scales on stale news.
    expect(await value('dotgit_task_queue_backlog', { queue: 'q-a', type: 'workflow' })).toBeUndefined();
    expect(await value('dotgit_task_queue_stats_up')).toBe(0);
  } finally {
    stop();
  }
});
