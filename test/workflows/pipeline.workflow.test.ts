import path from 'node:path';
import { promises as fs } from 'node:fs';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startWorkflowTestEnv } from '../helpers/workflow-env';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { Context } from '@temporalio/activity';
import type { OrchestrationActivities } from '../../activities/orchestration-activities';
import { stepAttempt, type SandboxActivities } from '../../activities/sandbox-activities';
import type { WebhookActivities } from '../../activities/webhook-activities';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { parsePipeline } from '../../core/pipeline-spec';
import { hostQueue, ORCHESTRATION_QUEUE, SANDBOX_QUEUE, type PipelineInput, type RunResult, type StepInput } from '../../core/run-types';
import { MAX_HOST_LOSSES } from '../../workflows/pipeline';
import { ROOT } from '../../infra/root';

// The pipeline workflow's logic against a real Temporal dev server (existing-path executable),
// with activities replaced by recording fakes: DAG order, parallelism, skips, step retries.

const WORKFLOWS = path.join(ROOT, 'workflows', 'index.ts');
// Each workflow change that alters commands records a new file; old files stay and must keep replaying.
export const HISTORY_FILE = path.join(__dirname, 'histories', 'pipeline-dag-v7.json');
/** A failed run after issue 14: its workflow execution fails too. */
const FAILED_HISTORY_FILE = path.join(__dirname, 'histories', 'pipeline-failed-v8.json');

let env: TestWorkflowEnvironment;

beforeAll(async () => {
  env = await startWorkflowTestEnv();
}, 120_000);

afterAll(async () => {
  await env?.teardown();
});

const input: PipelineInput = { runId: 'pipeline:t:r:1', tenantId: 1, tenant: 't', repoId: 1, repo: 'r', ref: 'refs/heads/main', commit: 'a'.repeat(40) };

interface Recorder {
  events: string[];
  /** What the webhookDispatch children did (they may outlive the run). */
  webhooks: string[];
  /** `job/step queue [pinned] [restart note]` of each step started, and `cleanup job queue`. */
  queues: string[];
  finished?: { status: string; message?: string };
}

/** Fake sandbox activities as one host answers them: its id and own queue in each result. */
function onHost(sandbox: SandboxActivities, host: string): SandboxActivities {
  return {
    runStep: async (s) => ({ ...(await sandbox.runStep(s)), host, hostQueue: hostQueue(host) }),
    cleanupWorkspace: (a) => sandbox.cleanupWorkspace(a),
  };
}

function fakes(yaml: string, exitCodes: (s: StepInput) => number | Error, rec: Recorder, workflowRunHooks: boolean) {
  const orchestration: OrchestrationActivities = {
    loadPipeline: async () => {
      try {
        return { ok: true, spec: parsePipeline(yaml), workflowRunHooks };
      } catch (err) {
        return { ok: false, message: (err as Error).message, workflowRunHooks };
      }
    },
    startRun: async () => undefined,
    finishRun: async (a) => {
      rec.finished = { status: a.status, message: a.message };
    },
    failStep: async (a) => {
      rec.events.push(`fail ${a.job}/${a.step}: ${a.message}`);
    },
    skipJob: async (a) => {
      rec.events.push(`skip ${a.job}`);
    },
    skipRemainingSteps: async () => undefined,
    invalidateRepoCaches: async () => {
      rec.events.push('invalidate');
    },
    recordJobOutputs: async () => undefined,
    reusedJobs: async () => ({}),
    expandMatrixJob: async () => ({ ok: false, message: 'no dynamic matrix in these tests' }),
  };
  let concurrent = 0;
  const sandbox: SandboxActivities = {
    runStep: async (s) => {
      concurrent++;
      const queue = Context.current().info.taskQueue;
      rec.events.push(`start ${s.job.name}/${s.step.name}#${s.attempt} (concurrent ${concurrent})`);
      rec.queues.push(`${s.job.name}/${s.step.name} ${queue}${s.pinned ? ' pinned' : ''}${s.restartNote ? ` [${s.restartNote}]` : ''}`);
      await new Promise((r) => setTimeout(r, 300));
      concurrent--;
      const code = exitCodes(s);
      if (code instanceof Error) throw code;
      // As the real activity: the attempt it ran as, counting Temporal's re-runs of it.
      return { exitCode: code, timedOut: false, cancelled: false, attempt: stepAttempt(s, Context.current().info.attempt) };
    },
    cleanupWorkspace: async (a) => {
      rec.queues.push(`cleanup ${a.job} ${Context.current().info.taskQueue}`);
    },
  };
  const webhooks: WebhookActivities = {
    planWebhookEvent: async (a) => {
      if (a.event.event === 'redelivery') return null;
      const what = a.event.event === 'workflow_run' ? `${a.event.event} ${a.event.action} ${a.event.runId}` : a.event.event;
      rec.webhooks.push(`plan ${what}`);
      return { event: a.event.event, action: 'action' in a.event ? a.event.action : null, body: JSON.stringify({ what }), hookIds: [1] };
    },
    deliverWebhook: async (a) => {
      rec.webhooks.push(`deliver ${a.body} as ${a.deliveryId.length === 36 ? 'uuid' : a.deliveryId}`);
      return { status: 200, outcome: 'success' };
    },
  };
  return { orchestration, sandbox, webhooks };
}

/** The run's result: a failed run fails its workflow (issue 14), with the result as the failure's details; a cancelled one is cancelled. */
async function runResult(handle: WorkflowHandle): Promise<RunResult> {
  try {
    return (await handle.result()) as RunResult;
  } catch (err) {
    if (err instanceof WorkflowFailedError && err.cause instanceof ApplicationFailure && err.cause.type === 'RunFailed') return err.cause.details?.[0] as RunResult;
    if (err instanceof WorkflowFailedError && err.cause instanceof CancelledFailure) return { status: 'cancelled' };
    throw err;
  }
}

async function runPipeline(
  yaml: string,
  exitCodes: (s: StepInput) => number | Error,
  workflowId: string,
  o: { input?: PipelineInput; waitFor?: string[]; workflowRunHooks?: boolean } = {},
) {
  const rec: Recorder = { events: [], webhooks: [], queues: [] };
  const { orchestration, sandbox, webhooks } = fakes(yaml, exitCodes, rec, o.workflowRunHooks ?? false);
  const w1 = await Worker.create({ connection: env.nativeConnection, taskQueue: ORCHESTRATION_QUEUE, workflowsPath: WORKFLOWS, activities: { ...orchestration, ...webhooks } });
  // One sandbox host, as a sandbox worker runs: the shared queue and its own.
  const host = onHost(sandbox, 'host-a');
  const w2 = await Worker.create({ connection: env.nativeConnection, taskQueue: SANDBOX_QUEUE, activities: host });
  const w3 = await Worker.create({ connection: env.nativeConnection, taskQueue: hostQueue('host-a'), activities: host });
  const handle = await env.client.workflow.start('pipeline', { workflowId, taskQueue: ORCHESTRATION_QUEUE, args: [o.input ?? input] });
  // Also waits for the named workflows (children that outlive the run) before the workers stop.
  const result = await w1.runUntil(
    w2.runUntil(
      w3.runUntil(async () => {
        const r = await runResult(handle);
        for (const id of o.waitFor ?? []) await env.client.workflow.getHandle(id).result();
        return r;
      }),
    ),
  );
  return { result, rec, handle };
}

const DAG = `
jobs:
  a:
    steps: [{ name: one, run: x }]
  b:
    needs: [a]
    steps: [{ name: two, run: x }]
  c:
    needs: [a]
    steps: [{ name: three, run: x }]
  d:
    needs: [b, c]
    steps: [{ name: four, run: x }]
`;

test('jobs run in DAG order, independent jobs in parallel; a history is recorded for replay', async () => {
  const { result, rec, handle } = await runPipeline(DAG, () => 0, 'wf-dag');
  expect(result.status).toBe('success');
  const order = rec.events.filter((e) => e.startsWith('start ')).map((e) => e.split(' ')[1].split('/')[0]);
  expect(order[0]).toBe('a');
  expect(new Set(order.slice(1, 3))).toEqual(new Set(['b', 'c']));
  expect(order[3]).toBe('d');
  // b and c overlapped.
  expect(rec.events.some((e) => e.includes('(concurrent 2)'))).toBe(true);
  expect(rec.events.at(-1)).toBe('invalidate');
  if (process.env.DOTGIT_RECORD_HISTORY === '1') {
    await fs.writeFile(HISTORY_FILE, historyToJSON(await handle.fetchHistory()));
  }
});

test('a failed job skips the jobs that need it; the run fails, and so does its workflow execution (a history is recorded)', async () => {
  const { result, rec, handle } = await runPipeline(DAG, (s) => (s.job.name === 'b' ? 3 : 0), 'wf-fail');
  expect(result.status).toBe('failure');
  // The Web UI's status filters and Failures view see it (issue 14).
  expect((await handle.describe()).status.name).toBe('FAILED');
  if (process.env.DOTGIT_RECORD_HISTORY === '1') await fs.writeFile(FAILED_HISTORY_FILE, historyToJSON(await handle.fetchHistory()));
  expect(result.message).toContain('b');
  expect(rec.events).toContain('skip d');
  expect(rec.events.some((e) => e.startsWith('start d/'))).toBe(false);
});

test('a flaky step passes on retry, with the attempt number counted up', async () => {
  const yaml = `jobs:\n  j:\n    steps:\n      - name: flaky\n        run: x\n        retry: 2\n`;
  const { result, rec } = await runPipeline(yaml, (s) => (s.attempt < 3 ? 1 : 0), 'wf-retry');
  expect(result.status).toBe('success');
  expect(rec.events.filter((e) => e.startsWith('start ')).map((e) => e.split(' ')[1])).toEqual(['j/flaky#1', 'j/flaky#2', 'j/flaky#3']);
});

test('attempt numbers count on after Temporal re-ran the step (a lost worker): retry: never repeats a number', async () => {
  const yaml = `jobs:\n  j:\n    steps:\n      - name: flaky\n        run: x\n        retry: 1\n`;
  const seen: string[] = [];
  const { result } = await runPipeline(
    yaml,
    (s) => {
      const activityAttempt = Context.current().info.attempt;
      seen.push(`${s.attempt}/${activityAttempt}`);
      // The first run of the activity is lost (its worker died): Temporal runs it again, as attempt 2; that one fails.
      if (s.attempt === 1 && activityAttempt === 1) return ApplicationFailure.retryable('worker lost');
      return stepAttempt(s, activityAttempt) === 2 ? 1 : 0;
    },
    'wf-attempts',
  );
  expect(result.status).toBe('success');
  // Workflow attempt / activity attempt: the retry: re-run is attempt 3, not a second attempt 2.
  expect(seen).toEqual(['1/1', '1/2', '3/1']);
});

test('an invalid pipeline file fails the run without running anything', async () => {
  const { result, rec } = await runPipeline('jobs: [', () => 0, 'wf-invalid');
  expect(result.status).toBe('failure');
  expect(rec.finished?.message).toMatch(/pipeline\.yml:1:\d+/);
  expect(rec.events).toEqual(['invalidate']);
});

test('a step that cannot run at all (no sandbox) fails the run with the reason, never leaves it running', async () => {
  const yaml = `jobs:\n  j:\n    steps:\n      - name: a\n        run: x\n      - name: b\n        run: x\n`;
  const { result, rec } = await runPipeline(yaml, () => ApplicationFailure.nonRetryable('no sandbox is available', 'SandboxUnavailable'), 'wf-nosandbox');
  expect(result.status).toBe('failure');
  expect(rec.events).toContain('fail j/a: no sandbox is available');
  expect(rec.events.some((e) => e.startsWith('start j/b'))).toBe(false);
  expect(rec.finished?.status).toBe('failure');
});

test('a run announces workflow_run requested and completed to webhooks through children that outlive it', async () => {
  const hooked = { ...input, runId: 'pipeline:t:r:hooks' };
  const { result, rec } = await runPipeline(`jobs:\n  j:\n    steps: [{ name: one, run: x }]\n`, () => 0, 'wf-hooks', {
    input: hooked,
    waitFor: [`webhook:${hooked.runId}:requested`, `webhook:${hooked.runId}:completed`],
    workflowRunHooks: true,
  });
  expect(result.status).toBe('success');
  const ours = rec.webhooks.filter((w) => w.includes(hooked.runId));
  expect(ours).toEqual(
    expect.arrayContaining([
      `plan workflow_run requested ${hooked.runId}`,
      `plan workflow_run completed ${hooked.runId}`,
      `deliver {"what":"workflow_run requested ${hooked.runId}"} as uuid`,
      `deliver {"what":"workflow_run completed ${hooked.runId}"} as uuid`,
    ]),
  );
  const child = await env.client.workflow.getHandle(`webhook:${hooked.runId}:completed`).describe();
  expect(child.type).toBe('webhookDispatch');
  expect(await env.client.workflow.getHandle(`webhook:${hooked.runId}:completed`).result()).toEqual({ delivered: 1, failed: 0 });
});

test('a repository without workflow_run hooks: the run starts no dispatch child (issue 11: fewer Temporal actions)', async () => {
  const quiet = { ...input, runId: 'pipeline:t:r:no-hooks' };
  const { result, rec, handle } = await runPipeline(`jobs:\n  j:\n    steps: [{ name: one, run: x }]\n`, () => 0, 'wf-no-hooks', { input: quiet, workflowRunHooks: false });
  expect(result.status).toBe('success');
  expect(rec.webhooks.filter((w) => w.includes(quiet.runId))).toEqual([]);
  const history = await handle.fetchHistory();
  expect(history.events?.filter((e) => e.startChildWorkflowExecutionInitiatedEventAttributes)).toEqual([]);
  for (const action of ['requested', 'completed']) {
    await expect(env.client.workflow.getHandle(`webhook:${quiet.runId}:${action}`).describe()).rejects.toThrow(/not found/i);
  }
});

const THREE_STEPS = `jobs:\n  j:\n    steps:\n      - { name: one, run: x }\n      - { name: two, run: x }\n      - { name: three, run: x }\n`;

test("a job's first step runs on the shared queue, its later steps and clean-up on that host's own queue", async () => {
  const { result, rec } = await runPipeline(THREE_STEPS, () => 0, 'wf-pinned');
  expect(result.status).toBe('success');
  expect(rec.queues).toEqual(['j/one dotgit-sandbox', 'j/two dotgit-sandbox@host-a pinned', 'j/three dotgit-sandbox@host-a pinned', 'cleanup j dotgit-sandbox@host-a']);
});

test('a retry: re-run of the first step stays on the host its first run answered from', async () => {
  const yaml = `jobs:\n  j:\n    steps:\n      - name: flaky\n        run: x\n        retry: 1\n`;
  const { result, rec } = await runPipeline(yaml, (s) => (s.attempt === 1 ? 1 : 0), 'wf-pinned-retry');
  expect(result.status).toBe('success');
  expect(rec.queues).toEqual(['j/flaky dotgit-sandbox', 'j/flaky dotgit-sandbox@host-a pinned', 'cleanup j dotgit-sandbox@host-a']);
});

const WORKSPACE_LOST = "the job's workspace is gone from this host";

test('a host that lost the workspace: the job starts again from its first step, every step saying why; once per loss', async () => {
  let lostOnce = false;
  const { result, rec } = await runPipeline(
    THREE_STEPS,
    (s) => {
      if (s.step.name === 'two' && !lostOnce) {
        lostOnce = true;
        return ApplicationFailure.nonRetryable(WORKSPACE_LOST, 'WorkspaceLost');
      }
      return 0;
    },
    'wf-workspace-lost',
  );
  expect(result.status).toBe('success');
  const note = `restarted: host host-a lost (${WORKSPACE_LOST})`;
  expect(rec.queues).toEqual([
    'j/one dotgit-sandbox',
    'j/two dotgit-sandbox@host-a pinned',
    `j/one dotgit-sandbox [${note}]`,
    `j/two dotgit-sandbox@host-a pinned [${note}]`,
    `j/three dotgit-sandbox@host-a pinned [${note}]`,
    'cleanup j dotgit-sandbox@host-a',
  ]);
  // Not recorded as a failed step: the job went on.
  expect(rec.events.filter((e) => e.startsWith('fail '))).toEqual([]);
});

test('restarts after lost hosts are bounded: then the step fails naming the lost host', async () => {
  const { result, rec } = await runPipeline(
    THREE_STEPS,
    (s) => (s.step.name === 'two' ? ApplicationFailure.nonRetryable(WORKSPACE_LOST, 'WorkspaceLost') : 0),
    'wf-lost-bounded',
  );
  expect(result.status).toBe('failure');
  expect(rec.queues.filter((q) => q.startsWith('j/one'))).toHaveLength(MAX_HOST_LOSSES + 1);
  expect(rec.events.filter((e) => e.startsWith('fail '))).toEqual([
    `fail j/two: host host-a lost (${WORKSPACE_LOST}); the job already started again ${MAX_HOST_LOSSES} times after lost hosts`,
  ]);
  expect(rec.queues.some((q) => q.startsWith('j/three'))).toBe(false);
});

test('a host that disappears between steps (its queue unpolled past the schedule-to-start timeout): the job restarts on another host', async () => {
  const rec: Recorder = { events: [], webhooks: [], queues: [] };
  const { orchestration, sandbox, webhooks } = fakes(THREE_STEPS, () => 0, rec, false);
  const orch = await Worker.create({ connection: env.nativeConnection, taskQueue: ORCHESTRATION_QUEUE, workflowsPath: WORKFLOWS, activities: { ...orchestration, ...webhooks } });
  const hostB = onHost(sandbox, 'host-b');
  // Host b takes the first step, then goes away (both its workers stop) before the second is scheduled.
  const bShared: Worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: SANDBOX_QUEUE,
    activities: {
      ...hostB,
      runStep: async (s: StepInput) => {
        const r = await hostB.runStep(s);
        setImmediate(() => {
          bShared.shutdown();
          bOwn.shutdown();
        });
        return r;
      },
    },
  });
  const bOwn = await Worker.create({ connection: env.nativeConnection, taskQueue: hostQueue('host-b'), activities: hostB });
  const handle = await env.client.workflow.start('pipeline', { workflowId: 'wf-host-gone', taskQueue: ORCHESTRATION_QUEUE, args: [{ ...input, runId: 'pipeline:t:r:gone' }] });
  const started = Date.now();
  const result = await orch.runUntil(async () => {
    await Promise.all([bShared.run(), bOwn.run()]);
    const hostA = onHost(sandbox, 'host-a');
    const aShared = await Worker.create({ connection: env.nativeConnection, taskQueue: SANDBOX_QUEUE, activities: hostA });
    const aOwn = await Worker.create({ connection: env.nativeConnection, taskQueue: hostQueue('host-a'), activities: hostA });
    return aShared.runUntil(aOwn.runUntil(handle.result()));
  });
  expect(result.status).toBe('success');
  const note = 'restarted: host host-b lost (it took no task for 30 seconds)';
  expect(rec.queues).toEqual([
    'j/one dotgit-sandbox',
    `j/one dotgit-sandbox [${note}]`,
    `j/two dotgit-sandbox@host-a pinned [${note}]`,
    `j/three dotgit-sandbox@host-a pinned [${note}]`,
    'cleanup j dotgit-sandbox@host-a',
  ]);
  // Found lost by the schedule-to-start timeout, not left waiting.
  expect(Date.now() - started).toBeGreaterThan(29_000);
}, 90_000);
