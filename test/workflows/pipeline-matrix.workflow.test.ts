import path from 'node:path';
import { promises as fs } from 'node:fs';
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { Context } from '@temporalio/activity';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { OrchestrationActivities } from '../../activities/orchestration-activities';
import type { SandboxActivities } from '../../activities/sandbox-activities';
import { parsePipeline } from '../../core/pipeline-spec';
import { hostQueue, ORCHESTRATION_QUEUE, SANDBOX_QUEUE, type PipelineInput, type RunResult, type StepInput, type StepResult } from '../../core/run-types';
import { ROOT } from '../../infra/root';
import { useWorkflowTestEnv } from '../helpers/workflow-env';

// Issue 17 in the pipeline workflow: matrix instances (max-parallel, fail-fast) and job outputs
// passed to the jobs that need them. Record the history anew with DOTGIT_RECORD_HISTORY=1.

const WORKFLOWS = path.join(ROOT, 'workflows', 'index.ts');
const HISTORY_FILE = path.join(__dirname, 'histories', 'pipeline-matrix-v9.json');
const env = useWorkflowTestEnv();
const input: PipelineInput = { runId: 'pipeline:t:r:m', tenantId: 1, tenant: 't', repo: 'r', repoId: 1, ref: 'refs/heads/main', commit: 'b'.repeat(40) };

interface Recorder {
  /** `job/step: run` of each step as the sandbox was asked to run it, env MATRIX_* and OUT appended. */
  ran: string[];
  skipped: string[];
  maxConcurrent: number;
  finished?: { status: string; message?: string };
}

type Answer = (s: StepInput) => Promise<Partial<StepResult>> | Partial<StepResult>;

async function runResult(handle: WorkflowHandle): Promise<RunResult> {
  try {
    return (await handle.result()) as RunResult;
  } catch (err) {
    if (err instanceof WorkflowFailedError && err.cause instanceof ApplicationFailure && err.cause.type === 'RunFailed') return err.cause.details?.[0] as RunResult;
    throw err;
  }
}

async function run(yaml: string, answer: Answer, workflowId: string) {
  const rec: Recorder = { ran: [], skipped: [], maxConcurrent: 0 };
  const orchestration: OrchestrationActivities = {
    loadPipeline: async () => ({ ok: true, spec: parsePipeline(yaml), workflowRunHooks: false }),
    startRun: async () => undefined,
    finishRun: async (a) => {
      rec.finished = { status: a.status, message: a.message };
    },
    failStep: async () => undefined,
    skipJob: async (a) => {
      rec.skipped.push(a.job);
    },
    skipRemainingSteps: async () => undefined,
    invalidateRepoCaches: async () => undefined,
    recordJobOutputs: async () => undefined,
    reusedJobs: async () => ({}),
  };
  let concurrent = 0;
  const sandbox: SandboxActivities = {
    runStep: async (s) => {
      rec.maxConcurrent = Math.max(rec.maxConcurrent, ++concurrent);
      const vars = Object.entries(s.step.env).filter(([k]) => k.startsWith('MATRIX_') || k === 'OUT').map(([k, v]) => `${k}=${v}`);
      rec.ran.push(`${s.job.name}/${s.step.name}: ${s.step.run}${vars.length ? ` [${vars.join(' ')}]` : ''}`);
      try {
        const r = await answer(s);
        return { exitCode: 0, timedOut: false, cancelled: false, attempt: s.attempt, host: 'host-a', hostQueue: hostQueue('host-a'), ...r };
      } finally {
        concurrent--;
      }
    },
    cleanupWorkspace: async () => undefined,
  };
  const w1 = await Worker.create({ connection: env().nativeConnection, taskQueue: ORCHESTRATION_QUEUE, workflowsPath: WORKFLOWS, activities: orchestration });
  const w2 = await Worker.create({ connection: env().nativeConnection, taskQueue: SANDBOX_QUEUE, activities: sandbox });
  const w3 = await Worker.create({ connection: env().nativeConnection, taskQueue: hostQueue('host-a'), activities: sandbox });
  const handle = await env().client.workflow.start('pipeline', { workflowId, taskQueue: ORCHESTRATION_QUEUE, args: [input] });
  const result = await w1.runUntil(w2.runUntil(w3.runUntil(() => runResult(handle))));
  return { result, rec, handle };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const MATRIX = `
jobs:
  test:
    matrix:
      node: [18, 20]
      db: [pg, sqlite]
      exclude: [{ node: 18, db: sqlite }]
      max-parallel: 2
    outputs: { version: "\${{ steps.build.outputs.version }}" }
    steps:
      - id: build
        name: build
        run: echo node \${{ matrix.node }}
      - name: after
        run: echo built \${{ steps.build.outputs.version }}
  use:
    needs: [test]
    steps:
      - name: show
        run: echo got \${{ needs.test.outputs.version }}
        env: { OUT: "v=\${{ needs.test.outputs.version }}" }
`;

test('a 2×2 matrix minus one exclude runs 3 instances, 2 at a time; outputs reach later steps and the job that needs it (history recorded)', async () => {
  const { result, rec, handle } = await run(
    MATRIX,
    async (s) => {
      await sleep(200);
      return s.step.name === 'build' ? { outputs: { version: `1.${s.step.env.MATRIX_NODE}` } } : {};
    },
    'pipeline-matrix-outputs',
  );
  expect(result.status).toBe('success');
  expect(rec.maxConcurrent).toBe(2);
  expect([...rec.ran].sort()).toEqual([
    'test (18, pg)/after: echo built 1.18 [MATRIX_NODE=18 MATRIX_DB=pg]',
    'test (18, pg)/build: echo node 18 [MATRIX_NODE=18 MATRIX_DB=pg]',
    'test (20, pg)/after: echo built 1.20 [MATRIX_NODE=20 MATRIX_DB=pg]',
    'test (20, pg)/build: echo node 20 [MATRIX_NODE=20 MATRIX_DB=pg]',
    'test (20, sqlite)/after: echo built 1.20 [MATRIX_NODE=20 MATRIX_DB=sqlite]',
    'test (20, sqlite)/build: echo node 20 [MATRIX_NODE=20 MATRIX_DB=sqlite]',
    // A matrix job's outputs: its instances' merged in their order (the last one's value here).
    'use/show: echo got 1.20 [OUT=v=1.20]',
  ]);
  expect(rec.ran[rec.ran.length - 1]).toMatch(/^use\/show/);
  if (process.env.DOTGIT_RECORD_HISTORY === '1') await fs.writeFile(HISTORY_FILE, historyToJSON(await handle.fetchHistory()));
});

test('fail-fast: a failed instance cancels its running siblings and skips those not started; the run fails, dependants skipped', async () => {
  const yaml = `
jobs:
  test:
    matrix: { n: [1, 2, 3], max-parallel: 2 }
    steps: [{ name: s, run: "test \${{ matrix.n }}" }]
  after:
    needs: [test]
    steps: [{ name: s, run: x }]
`;
  const { result, rec } = await run(
    yaml,
    async (s) => {
      if (s.step.env.MATRIX_N === '1') {
        await sleep(300);
        return { exitCode: 1 };
      }
      // The sibling runs until cancelled, heartbeating as the real step does.
      const ctx = Context.current();
      for (let i = 0; i < 600 && !ctx.cancellationSignal.aborted; i++) {
        ctx.heartbeat();
        await sleep(50);
      }
      return { exitCode: -1, cancelled: ctx.cancellationSignal.aborted };
    },
    'pipeline-matrix-fail-fast',
  );
  expect(result).toEqual({ status: 'failure', message: 'failed jobs: test (1)' });
  expect([...rec.ran].sort()).toEqual(['test (1)/s: test 1 [MATRIX_N=1]', 'test (2)/s: test 2 [MATRIX_N=2]']);
  expect(rec.skipped.sort()).toEqual(['after', 'test (3)']);
});

test('fail-fast: false lets the other instances run to their end', async () => {
  const yaml = `
jobs:
  test:
    matrix: { n: [1, 2, 3], fail-fast: false, max-parallel: 1 }
    steps: [{ name: s, run: "test \${{ matrix.n }}" }]
`;
  const { result, rec } = await run(yaml, (s) => ({ exitCode: s.step.env.MATRIX_N === '1' ? 1 : 0 }), 'pipeline-matrix-no-fail-fast');
  expect(result).toEqual({ status: 'failure', message: 'failed jobs: test (1)' });
  expect(rec.ran).toHaveLength(3);
  expect(rec.skipped).toEqual([]);
});
