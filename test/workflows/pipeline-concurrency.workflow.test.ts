import path from 'node:path';
import { promises as fs } from 'node:fs';
import { Context } from '@temporalio/activity';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { ConcurrencyActivities } from '../../activities/concurrency-activities';
import type { SandboxActivities } from '../../activities/sandbox-activities';
import { acquireGroupSignal, concurrencyGroupWorkflowId } from '../../core/concurrency-types';
import { parsePipeline } from '../../core/pipeline-spec';
import { hostQueue, ORCHESTRATION_QUEUE, SANDBOX_QUEUE, type PipelineInput, type RunResult } from '../../core/run-types';
import { ROOT } from '../../infra/root';
import { noopOrchestrationActivities, useWorkflowTestEnv } from '../helpers/workflow-env';

// Issue 17 item 4 in the workflows: runs of one concurrency group go one at a time in arrival order,
// each waiting run told how many are ahead (item 8), and cancel-in-progress cancels the older run.
// Record the histories anew with DOTGIT_RECORD_HISTORY=1.

const WORKFLOWS = path.join(ROOT, 'workflows', 'index.ts');
const env = useWorkflowTestEnv();
const record = async (file: string, history: unknown) => {
  if (process.env.DOTGIT_RECORD_HISTORY === '1') await fs.writeFile(path.join(__dirname, 'histories', file), historyToJSON(history as never));
};

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (ok()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Mocked activities around the real workflows: steps that run until the test lets them end. */
function harness(group: string, cancelInProgress: boolean, yaml?: string) {
  const spec = parsePipeline(yaml ?? `concurrency: { group: ${group}, cancel-in-progress: ${cancelInProgress} }\njobs:\n  j:\n    steps: [{ run: x }]\n`);
  const events: string[] = [];
  /** `start|end|cancelled <run>/<job>`: what job-level groups are about. */
  const jobEvents: string[] = [];
  const messages: Record<string, (string | null)[]> = {};
  const release = new Map<string, () => void>();
  const orchestration = noopOrchestrationActivities(spec);
  const concurrency: ConcurrencyActivities = {
    requestConcurrencyGroup: async (a) => {
      await env().client.workflow.signalWithStart('concurrencyGroup', { taskQueue: ORCHESTRATION_QUEUE, workflowId: a.lockWorkflowId, args: [{ queue: [] }], signal: acquireGroupSignal, signalArgs: [a.request] });
    },
    setRunWaitMessage: async (a) => {
      (messages[a.runId] ??= []).push(a.message);
    },
    setJobWaitMessage: async (a) => {
      (messages[`${a.runId}/${a.job}`] ??= []).push(a.message);
    },
  };
  const sandbox: Partial<SandboxActivities> = {
    runStep: async (s) => {
      events.push(`start ${s.runId}`);
      jobEvents.push(`start ${s.runId}/${s.job.name}`);
      const ctx = Context.current();
      let done = false;
      release.set(s.runId, () => (done = true));
      release.set(`${s.runId}/${s.job.name}`, () => (done = true));
      try {
        while (!done) {
          ctx.heartbeat();
          await Promise.race([new Promise((r) => setTimeout(r, 100)), ctx.cancelled]);
        }
      } catch {
        events.push(`cancelled ${s.runId}`);
        jobEvents.push(`cancelled ${s.runId}/${s.job.name}`);
        return { exitCode: 143, timedOut: false, cancelled: true, attempt: s.attempt, host: 'host-a', hostQueue: hostQueue('host-a') };
      }
      events.push(`end ${s.runId}`);
      jobEvents.push(`end ${s.runId}/${s.job.name}`);
      return { exitCode: 0, timedOut: false, cancelled: false, attempt: s.attempt, host: 'host-a', hostQueue: hostQueue('host-a') };
    },
    cleanupWorkspace: async () => undefined,
  };
  const workers = async () => [
    await Worker.create({ connection: env().nativeConnection, taskQueue: ORCHESTRATION_QUEUE, workflowsPath: WORKFLOWS, activities: { ...orchestration, ...concurrency } }),
    await Worker.create({ connection: env().nativeConnection, taskQueue: SANDBOX_QUEUE, activities: sandbox }),
    await Worker.create({ connection: env().nativeConnection, taskQueue: hostQueue('host-a'), activities: sandbox }),
  ];
  const start = (id: string) => {
    const input: PipelineInput = { runId: id, tenantId: 1, tenant: 't', repo: 'r', repoId: 1, ref: 'refs/heads/main', commit: 'c'.repeat(40), event: 'push' };
    return env().client.workflow.start('pipeline', { workflowId: id, taskQueue: ORCHESTRATION_QUEUE, args: [input] });
  };
  return { events, jobEvents, messages, release, workers, start };
}

async function runResult(handle: WorkflowHandle): Promise<RunResult> {
  try {
    return (await handle.result()) as RunResult;
  } catch (err) {
    if (err instanceof WorkflowFailedError && err.cause instanceof CancelledFailure) return { status: 'cancelled' };
    throw err;
  }
}

/** Runs `body` while the three workers poll. */
async function withWorkers(ws: Worker[], body: () => Promise<void>): Promise<void> {
  const [w1, w2, w3] = ws;
  await w1.runUntil(w2.runUntil(w3.runUntil(body)));
}

test('three runs of a group go one at a time in arrival order, each told how many runs are ahead', async () => {
  const h = harness('fifo', false);
  await withWorkers(await h.workers(), async () => {
    const a = await h.start('run-a');
    await until('run-a started', () => h.events.includes('start run-a'));
    const b = await h.start('run-b');
    await until('run-b queued', () => h.messages['run-b']?.length === 1);
    const c = await h.start('run-c');
    await until('run-c queued', () => h.messages['run-c']?.length === 1);
    expect(h.messages).toEqual({ 'run-b': ['queued behind 1 run in concurrency group fifo'], 'run-c': ['queued behind 2 runs in concurrency group fifo'] });
    h.release.get('run-a')!();
    await until('run-b started', () => h.events.includes('start run-b'));
    h.release.get('run-b')!();
    await until('run-c started', () => h.events.includes('start run-c'));
    h.release.get('run-c')!();
    expect(await Promise.all([a, b, c].map(runResult))).toEqual([{ status: 'success' }, { status: 'success' }, { status: 'success' }]);
    expect(h.events).toEqual(['start run-a', 'end run-a', 'start run-b', 'end run-b', 'start run-c', 'end run-c']);
    // C moved up once A was done; each run's message is cleared when its turn comes.
    expect(h.messages['run-b']).toEqual(['queued behind 1 run in concurrency group fifo', null]);
    expect(h.messages['run-c']).toEqual(['queued behind 2 runs in concurrency group fifo', 'queued behind 1 run in concurrency group fifo', null]);
    await record('pipeline-concurrency-run-v1.json', await c.fetchHistory());
    const lock = env().client.workflow.getHandle(concurrencyGroupWorkflowId('t', 'r', 'fifo'));
    await lock.terminate('test over');
    await record('pipeline-concurrency-group-v1.json', await lock.fetchHistory());
  });
}, 120_000);

test('with cancel-in-progress a newer run cancels the running one, then runs', async () => {
  const h = harness('newest', true);
  await withWorkers(await h.workers(), async () => {
    const older = await h.start('run-old');
    await until('run-old started', () => h.events.includes('start run-old'));
    const newer = await h.start('run-new');
    expect(await runResult(older)).toEqual({ status: 'cancelled' });
    await until('run-new started', () => h.events.includes('start run-new'));
    h.release.get('run-new')!();
    expect(await runResult(newer)).toEqual({ status: 'success' });
    expect(h.events).toEqual(['start run-old', 'cancelled run-old', 'start run-new', 'end run-new']);
    await record('pipeline-concurrency-cancel-v1.json', await older.fetchHistory());
    await env().client.workflow.getHandle(concurrencyGroupWorkflowId('t', 'r', 'newest')).terminate('test over');
  });
}, 120_000);

const JOB_LEVEL = (cancel: boolean) => `
jobs:
  build:
    steps: [{ run: make }]
  ship:
    needs: [build]
    concurrency: { group: ship-main, cancel-in-progress: ${cancel} }
    steps: [{ run: ship }]
`;

test('job-level: only the job with the group waits for an earlier run\'s job, told how many are ahead; the rest of the run goes on', async () => {
  const h = harness('', false, JOB_LEVEL(false));
  await withWorkers(await h.workers(), async () => {
    const a = await h.start('job-a');
    await until('job-a build started', () => h.jobEvents.includes('start job-a/build'));
    h.release.get('job-a/build')!();
    await until('job-a ship started', () => h.jobEvents.includes('start job-a/ship'));
    const b = await h.start('job-b');
    await until('job-b build started', () => h.jobEvents.includes('start job-b/build'));
    h.release.get('job-b/build')!();
    await until('job-b ship queued', () => h.messages['job-b/ship']?.length === 1);
    expect(h.messages['job-b/ship']).toEqual(['queued behind 1 holder in concurrency group ship-main']);
    expect(h.jobEvents).not.toContain('start job-b/ship');
    h.release.get('job-a/ship')!();
    await until('job-b ship started', () => h.jobEvents.includes('start job-b/ship'));
    h.release.get('job-b/ship')!();
    expect(await Promise.all([a, b].map(runResult))).toEqual([{ status: 'success' }, { status: 'success' }]);
    expect(h.jobEvents.filter((e) => e.includes('/ship'))).toEqual(['start job-a/ship', 'end job-a/ship', 'start job-b/ship', 'end job-b/ship']);
    expect(h.messages['job-b/ship']).toEqual(['queued behind 1 holder in concurrency group ship-main', null]);
    await record('h3-pipeline-job-concurrency-v1.json', await b.fetchHistory());
    const lock = env().client.workflow.getHandle(concurrencyGroupWorkflowId('t', 'r', 'ship-main'));
    await lock.terminate('test over');
    await record('h3-concurrency-group-jobs-v1.json', await lock.fetchHistory());
  });
}, 120_000);

test('job-level cancel-in-progress: a newer run\'s job cancels the older run\'s job (that run ends cancelled), then runs', async () => {
  const h = harness('', true, JOB_LEVEL(true).replace('ship-', 'newest-'));
  await withWorkers(await h.workers(), async () => {
    const older = await h.start('jc-old');
    await until('jc-old build started', () => h.jobEvents.includes('start jc-old/build'));
    h.release.get('jc-old/build')!();
    await until('jc-old ship started', () => h.jobEvents.includes('start jc-old/ship'));
    const newer = await h.start('jc-new');
    await until('jc-new build started', () => h.jobEvents.includes('start jc-new/build'));
    h.release.get('jc-new/build')!();
    expect(await runResult(older)).toEqual({ status: 'cancelled' });
    await until('jc-new ship started', () => h.jobEvents.includes('start jc-new/ship'));
    h.release.get('jc-new/ship')!();
    expect(await runResult(newer)).toEqual({ status: 'success' });
    expect(h.jobEvents.filter((e) => e.includes('/ship'))).toEqual(['start jc-old/ship', 'cancelled jc-old/ship', 'start jc-new/ship', 'end jc-new/ship']);
    await env().client.workflow.getHandle(concurrencyGroupWorkflowId('t', 'r', 'newest-main')).terminate('test over');
  });
}, 120_000);
