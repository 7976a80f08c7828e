/**
 * The autoscaling signal (issue 11, ADR 0013): each task queue's backlog as Temporal reports it
 * (`DescribeTaskQueue` with `reportStats`) and this worker's busy slots, as Prometheus gauges on
 * the worker's `/metrics`, for KEDA or an HPA.
 *
 * Backlogs are read in the background every `intervalMs` (one small RPC per queue and task type);
 * slots are read from the SDK when `/metrics` is scraped. Temporal being down never throws: the
 * backlog series are dropped (a stale number would scale the fleet on old news) and
 * `dotgit_task_queue_stats_up` goes to 0 until Temporal answers again.
 */
import client from 'prom-client';
import { temporal } from '@temporalio/proto';
import { optionalTsToMs } from '@temporalio/common/lib/time';
import type { NativeConnection, Worker } from '@temporalio/worker';
import type { Logger } from '../core/logger';

const { TaskQueueType, TaskQueueKind } = temporal.api.enums.v1;
type DescribeTaskQueueResponse = temporal.api.workflowservice.v1.IDescribeTaskQueueResponse;

export type TaskType = 'workflow' | 'activity';
const TYPES: Array<[TaskType, temporal.api.enums.v1.TaskQueueType]> = [
  ['workflow', TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW],
  ['activity', TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY],
];

/** What one DescribeTaskQueue answer says about one queue and task type. */
export interface QueueSample {
  backlog: number;
  backlogAgeSeconds: number;
  addRate: number;
  dispatchRate: number;
  pollers: number;
}

/** Reads the stats of one answer; absent fields (an empty queue) are zero. */
export function queueSample(res: DescribeTaskQueueResponse): QueueSample {
  const s = res.stats;
  const count = s?.approximateBacklogCount;
  return {
    backlog: count == null ? 0 : typeof count === 'number' ? count : count.toNumber(),
    backlogAgeSeconds: (optionalTsToMs(s?.approximateBacklogAge) ?? 0) / 1000,
    addRate: s?.tasksAddRate ?? 0,
    dispatchRate: s?.tasksDispatchRate ?? 0,
    pollers: res.pollers?.length ?? 0,
  };
}

export interface QueueMetricsOptions {
  /** The worker's connection (its workflowService answers DescribeTaskQueue). */
  connection: Pick<NativeConnection, 'workflowService' | 'withDeadline'>;
  namespace: string;
  /** Queues whose backlog is read (besides the workers' own): the shared orchestration and sandbox queues. */
  queues: string[];
  /** This process's workers: their queues are read too, and their slots are exported. */
  workers: Worker[];
  /** 0 = backlogs are never read (slots still are). */
  intervalMs: number;
  log: Pick<Logger, 'warn' | 'info'>;
  registry?: client.Registry;
}

/** Starts the background reads and registers the gauges; answers a function that stops the reads. */
export function startQueueMetrics(o: QueueMetricsOptions): () => void {
  const registers = [o.registry ?? client.register];
  const queues = [...new Set([...o.queues, ...o.workers.map((w) => w.options.taskQueue)])];
  const gauge = (name: string, help: string, labelNames: string[], collect?: client.GaugeConfiguration<string>['collect']) =>
    new client.Gauge({ name, help, labelNames, registers, ...(collect ? { collect } : {}) });
  const backlog = gauge('dotgit_task_queue_backlog', 'Tasks waiting in the task queue (Temporal approximateBacklogCount)', ['queue', 'type']);
  const age = gauge('dotgit_task_queue_backlog_age_seconds', 'Age of the oldest task waiting in the task queue (approximateBacklogAge)', ['queue', 'type']);
  const addRate = gauge('dotgit_task_queue_add_rate', 'Tasks added to the task queue per second (Temporal tasksAddRate)', ['queue', 'type']);
  const dispatchRate = gauge('dotgit_task_queue_dispatch_rate', 'Tasks handed to workers per second (Temporal tasksDispatchRate)', ['queue', 'type']);
  const pollers = gauge('dotgit_task_queue_pollers', 'Workers polling the task queue recently (all processes)', ['queue', 'type']);
  const up = gauge('dotgit_task_queue_stats_up', '1 when the last read of the task-queue backlogs from Temporal succeeded, else 0', []);
  const errors = new client.Counter({ name: 'dotgit_task_queue_stats_errors_total', help: 'Failed reads of task-queue backlogs from Temporal', registers });
  const slotsOf = (w: Worker) => {
    const kinds: Array<[TaskType, number, number | undefined]> = [];
    const status = w.getStatus();
    // A custom supplier (the SDK keeps it wrapped) may say its capacity too: the sandbox queue's job slots do.
    const total = (s: { type: string; numSlots?: number; supplier?: { numSlots?: number } }) =>
      s.type === 'fixed-size' ? s.numSlots : s.type === 'custom' ? s.supplier?.numSlots : undefined;
    const tuner = w.options.tuner as unknown as { workflowTaskSlotSupplier: { type: string; numSlots?: number }; activityTaskSlotSupplier: { type: string; numSlots?: number } };
    if (w.options.workflowsPath || w.options.workflowBundle) kinds.push(['workflow', status.numInFlightWorkflowActivations, total(tuner.workflowTaskSlotSupplier)]);
    // A custom supplier may count its places taken itself (the sandbox queue's jobs hold one between steps).
    const used = (s: { type: string; supplier?: { used?: unknown } }) => (s.type === 'custom' && typeof s.supplier?.used === 'number' ? s.supplier.used : undefined);
    if (w.options.activities.size > 0) kinds.push(['activity', used(tuner.activityTaskSlotSupplier) ?? status.numInFlightNonLocalActivities, total(tuner.activityTaskSlotSupplier)]);
    return kinds;
  };
  gauge('dotgit_worker_slots_used', "This worker's busy task slots (workflow activations or activities in progress)", ['queue', 'kind'], function collect() {
    this.reset();
    for (const w of o.workers) for (const [kind, used] of slotsOf(w)) this.set({ queue: w.options.taskQueue, kind }, used);
  });
  gauge('dotgit_worker_slots', "This worker's task slots in all (its concurrency limit)", ['queue', 'kind'], function collect() {
    this.reset();
    for (const w of o.workers) for (const [kind, , total] of slotsOf(w)) if (total !== undefined) this.set({ queue: w.options.taskQueue, kind }, total);
  });

  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let failing = false;
  const readAll = async () => {
    const samples: Array<[string, TaskType, QueueSample]> = [];
    // Bounded so a hung Temporal never piles reads up; the next tick tries again.
    const deadline = Date.now() + Math.min(Math.max(o.intervalMs, 1000), 10_000);
    for (const queue of queues) {
      for (const [type, taskQueueType] of TYPES) {
        const res = await o.connection.withDeadline(deadline, () =>
          o.connection.workflowService.describeTaskQueue({
            namespace: o.namespace,
            taskQueue: { name: queue, kind: TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
            taskQueueType,
            reportStats: true,
          }),
        );
        samples.push([queue, type, queueSample(res)]);
      }
    }
    return samples;
  };
  const tick = async () => {
    try {
      const samples = await readAll();
      for (const [queue, type, s] of samples) {
        backlog.set({ queue, type }, s.backlog);
        age.set({ queue, type }, s.backlogAgeSeconds);
        addRate.set({ queue, type }, s.addRate);
        dispatchRate.set({ queue, type }, s.dispatchRate);
        pollers.set({ queue, type }, s.pollers);
      }
      up.set(1);
      if (failing) o.log.info('task-queue backlogs readable again');
      failing = false;
    } catch (err) {
      errors.inc();
      up.set(0);
      for (const g of [backlog, age, addRate, dispatchRate, pollers]) g.reset();
      // Once per outage, not every few seconds.
      if (!failing) o.log.warn({ err }, 'could not read task-queue backlogs from Temporal (retrying)');
      failing = true;
    } finally {
      if (!stopped) timer = setTimeout(() => void tick(), o.intervalMs).unref();
    }
  };
  if (o.intervalMs > 0) void tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
