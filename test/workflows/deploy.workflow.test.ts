import path from 'node:path';
import { existsSync, promises as fs } from 'node:fs';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startWorkflowTestEnv } from '../helpers/workflow-env';
import { Worker } from '@temporalio/worker';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { DeployActivities } from '../../activities/deploy-activities';
import type { OrchestrationActivities } from '../../activities/orchestration-activities';
import type { SandboxActivities } from '../../activities/sandbox-activities';
import type { WebhookActivities } from '../../activities/webhook-activities';
import { acquireLockSignal, approveUpdate, environmentLockWorkflowId, rejectUpdate, type DeployInput, type DeployResult } from '../../core/deploy-types';
import { parsePipeline } from '../../core/pipeline-spec';
import { ORCHESTRATION_QUEUE, SANDBOX_QUEUE, type StepInput } from '../../core/run-types';
import { ROOT } from '../../infra/root';

// The deploy workflow's logic against a real Temporal dev server with recording fake activities:
// the environment lock's order, the approval gate, rollback as compensation, cancel.

const WORKFLOWS = path.join(ROOT, 'workflows', 'index.ts');
export const HISTORY_FILE = path.join(__dirname, 'histories', 'deploy-approval-rollback.json');
/** A failed deploy after issue 14: its workflow execution fails too. */
const FAILED_HISTORY_FILE = path.join(__dirname, 'histories', 'deploy-failed-v2.json');
/** The environment lock's history so far (it idles 10 minutes before ending): grants, releases, a cancelled waiter. */
const LOCK_HISTORY_FILE = path.join(__dirname, 'histories', 'environment-lock-v1.json');

/** A deploy's result: a failed deploy fails its workflow (issue 14), with the result as the failure's details; a cancelled one is cancelled. */
async function deployResult(handle: WorkflowHandle): Promise<DeployResult> {
  try {
    return (await handle.result()) as DeployResult;
  } catch (err) {
    if (err instanceof WorkflowFailedError && err.cause instanceof ApplicationFailure && err.cause.type === 'DeployFailed') return err.cause.details?.[0] as DeployResult;
    if (err instanceof WorkflowFailedError && err.cause instanceof CancelledFailure) return { status: 'cancelled', message: 'cancelled' };
    throw err;
  }
}

const SPEC = parsePipeline(`
jobs:
  j:
    steps: [{ run: x }]
environments:
  prod:
    approval: true
    deploy:
      - { name: migrate, run: x }
      - { name: ship, run: x, retry: 1 }
    rollback:
      - { name: restore, run: x }
  quick:
    deploy:
      - { name: ship, run: x }
`);

let env: TestWorkflowEnvironment;
let worker1: Worker;
let worker2: Worker;
let running: Promise<void>;
const log: string[] = [];
/** Exit code of a step by `<deploy id>/<job>/<step>`; default 0. */
const exitCodes = new Map<string, number>();
const stepDelayMs = new Map<string, number>();
let lastGood: { id: string; commit: string } | null = null;

beforeAll(async () => {
  env = await startWorkflowTestEnv();
  const deploy: DeployActivities = {
    loadDeployEnvironment: async (i) => {
      if (i.deployId === 'e1') throw ApplicationFailure.nonRetryable('the repository is gone', 'Gone');
      const e = SPEC.environments!.find((x) => x.name === i.environment);
      return e ? { ok: true, environment: e } : { ok: false, message: `no environment ${i.environment}` };
    },
    requestEnvironmentLock: async (a) => {
      await env.client.workflow.signalWithStart('environmentLock', { workflowId: a.lockWorkflowId, taskQueue: ORCHESTRATION_QUEUE, args: [{ queue: [] }], signal: acquireLockSignal, signalArgs: [a.deployId, a.requestedAt] });
    },
    setDeployStatus: async (a) => {
      log.push(`${a.deployId} status ${a.status}${a.decidedBy ? ` by ${a.decidedBy}` : ''}`);
    },
    createDeploySteps: async (a) => {
      log.push(`${a.deployId} steps ${a.job}: ${a.steps.join(',')}`);
    },
    lastGoodDeploy: async () => lastGood,
    finishDeploy: async (a) => {
      log.push(`${a.deployId} finish ${a.status}${a.rollbackTo ? ` to ${a.rollbackTo}` : ''}${a.decidedBy ? ` by ${a.decidedBy}` : ''}`);
    },
  };
  const orchestration: Pick<OrchestrationActivities, 'failStep'> = {
    failStep: async (a) => {
      log.push(`${a.runId} failStep ${a.job}/${a.step}`);
    },
  };
  const webhooks: WebhookActivities = {
    planWebhookEvent: async () => null,
    deliverWebhook: async () => ({ status: 200, outcome: 'success' }),
  };
  const sandbox: SandboxActivities = {
    runStep: async (s: StepInput) => {
      const key = `${s.runId}/${s.job.name}/${s.step.name}`;
      log.push(`${s.runId} run ${s.job.name}/${s.step.name}#${s.attempt} at ${s.commit.slice(0, 1)} env=${s.job.environment}`);
      await new Promise((r) => setTimeout(r, stepDelayMs.get(s.runId) ?? 10));
      log.push(`${s.runId} done ${s.job.name}/${s.step.name}`);
      return { exitCode: exitCodes.get(key) ?? 0, timedOut: false, cancelled: false };
    },
    cleanupWorkspace: async () => undefined,
  };
  worker1 = await Worker.create({ connection: env.nativeConnection, taskQueue: ORCHESTRATION_QUEUE, workflowsPath: WORKFLOWS, activities: { ...deploy, ...orchestration, ...webhooks } });
  worker2 = await Worker.create({ connection: env.nativeConnection, taskQueue: SANDBOX_QUEUE, activities: sandbox });
  running = Promise.all([worker1.run(), worker2.run()]).then(() => undefined);
}, 120_000);

afterAll(async () => {
  worker1?.shutdown();
  worker2?.shutdown();
  await running;
  await env?.teardown();
});

function input(id: string, environment: string, commit = 'b'): DeployInput {
  return { deployId: id, tenantId: 1, tenant: 't', repoId: 1, repo: 'r', environment, ref: 'refs/heads/main', commit: commit.repeat(40), requestedBy: 'alice' };
}

async function waitForLog(line: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!log.includes(line)) {
    if (Date.now() > deadline) throw new Error(`never logged: ${line}\n${log.join('\n')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const ofDeploy = (id: string) => log.filter((l) => l.startsWith(`${id} `)).map((l) => l.slice(id.length + 1));

test('approval, a failing step retried, then rollback steps against the last good deploy; a history is recorded', async () => {
  lastGood = { id: 'deploy-good', commit: 'a'.repeat(40) };
  exitCodes.set('d1/deploy/ship', 1);
  const handle = await env.client.workflow.start('deploy', { workflowId: 'd1', taskQueue: ORCHESTRATION_QUEUE, args: [input('d1', 'prod')] });
  await waitForLog('d1 status waiting_approval');
  // Rejected by the validator: the decision must name who made it.
  await expect(handle.executeUpdate(approveUpdate, { args: [{ by: '' }] })).rejects.toMatchObject({ cause: { message: expect.stringMatching(/who/) } });
  await handle.executeUpdate(approveUpdate, { args: [{ by: 'bob' }] });
  await expect(handle.executeUpdate(approveUpdate, { args: [{ by: 'bob' }] })).rejects.toMatchObject({ cause: { message: expect.stringMatching(/not waiting/) } });
  const result: DeployResult = await handle.result();
  expect(result).toMatchObject({ status: 'rolled_back', rollbackTo: 'a'.repeat(40) });
  expect(ofDeploy('d1')).toEqual([
    'steps deploy: migrate,ship',
    'status waiting_approval',
    'status running by bob',
    'run deploy/migrate#1 at b env=prod',
    'done deploy/migrate',
    'run deploy/ship#1 at b env=prod',
    'done deploy/ship',
    'run deploy/ship#2 at b env=prod',
    'done deploy/ship',
    'steps rollback: restore',
    'run rollback/restore#1 at a env=prod',
    'done rollback/restore',
    `finish rolled_back to ${'a'.repeat(40)}`,
  ]);
  if (process.env.DOTGIT_RECORD_HISTORY === '1') await fs.writeFile(HISTORY_FILE, historyToJSON(await handle.fetchHistory()));
});

test('a rejection ends the deploy without running a step, recording who', async () => {
  const handle = await env.client.workflow.start('deploy', { workflowId: 'd2', taskQueue: ORCHESTRATION_QUEUE, args: [input('d2', 'prod')] });
  await waitForLog('d2 status waiting_approval');
  await handle.executeUpdate(rejectUpdate, { args: [{ by: 'carol', comment: 'no' }] });
  expect(await handle.result()).toMatchObject({ status: 'rejected', decidedBy: 'carol' });
  expect(ofDeploy('d2').some((l) => l.startsWith('run '))).toBe(false);
  expect(ofDeploy('d2').at(-1)).toBe('finish rejected by carol');
});

test('without a last good deploy there is nothing to roll back to: the deploy fails', async () => {
  lastGood = null;
  exitCodes.set('d3/deploy/ship', 2);
  const d3 = await env.client.workflow.start('deploy', { workflowId: 'd3', taskQueue: ORCHESTRATION_QUEUE, args: [input('d3', 'quick')] });
  const result = await deployResult(d3);
  expect(result).toMatchObject({ status: 'failure', message: expect.stringMatching(/no rollback steps|no earlier successful deploy/) });
  // The Web UI's status filters and Failures view see it (issue 14).
  expect((await d3.describe()).status.name).toBe('FAILED');
  if (process.env.DOTGIT_RECORD_HISTORY === '1') await fs.writeFile(FAILED_HISTORY_FILE, historyToJSON(await d3.fetchHistory()));
});

test('deploys to one environment run one at a time in arrival order; a cancelled waiter leaves the queue', async () => {
  for (const id of ['q1', 'q2', 'q3', 'q4']) stepDelayMs.set(id, 400);
  const q1 = await env.client.workflow.start('deploy', { workflowId: 'q1', taskQueue: ORCHESTRATION_QUEUE, args: [input('q1', 'quick')] });
  await waitForLog('q1 run deploy/ship#1 at b env=quick');
  const q2 = await env.client.workflow.start('deploy', { workflowId: 'q2', taskQueue: ORCHESTRATION_QUEUE, args: [input('q2', 'quick')] });
  const q3 = await env.client.workflow.start('deploy', { workflowId: 'q3', taskQueue: ORCHESTRATION_QUEUE, args: [input('q3', 'quick')] });
  const q4 = await env.client.workflow.start('deploy', { workflowId: 'q4', taskQueue: ORCHESTRATION_QUEUE, args: [input('q4', 'quick')] });
  await new Promise((r) => setTimeout(r, 200));
  await q3.cancel();
  const results = await Promise.all([q1, q2, q3, q4].map(deployResult));
  expect((await q3.describe()).status.name).toBe('CANCELLED');
  expect(results.map((r) => r.status)).toEqual(['success', 'success', 'cancelled', 'success']);
  const runs = log.filter((l) => /^q\d (run|done) /.test(l)).map((l) => l.split(' ').slice(0, 2).join(' '));
  expect(runs).toEqual(['q1 run', 'q1 done', 'q2 run', 'q2 done', 'q4 run', 'q4 done']);
  expect(ofDeploy('q3').some((l) => l.startsWith('run '))).toBe(false);
  if (process.env.DOTGIT_RECORD_HISTORY === '1' || !existsSync(LOCK_HISTORY_FILE)) {
    await fs.writeFile(LOCK_HISTORY_FILE, historyToJSON(await env.client.workflow.getHandle(environmentLockWorkflowId('t', 'r', 'quick')).fetchHistory()));
  }
});

test('an activity that keeps failing ends the deploy as failed, recorded, and frees the environment', async () => {
  const e1 = await deployResult(await env.client.workflow.start('deploy', { workflowId: 'e1', taskQueue: ORCHESTRATION_QUEUE, args: [input('e1', 'quick')] }));
  expect(e1).toMatchObject({ status: 'failure', message: expect.stringMatching(/Activity task failed|repository is gone/) });
  expect(ofDeploy('e1').at(-1)).toBe('finish failure');
  const e2 = await env.client.workflow.execute('deploy', { workflowId: 'e2', taskQueue: ORCHESTRATION_QUEUE, args: [input('e2', 'quick')] });
  expect(e2.status).toBe('success');
});
