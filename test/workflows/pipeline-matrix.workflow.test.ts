import path from 'node:path';
import { promises as fs } from 'node:fs';
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { Context } from '@temporalio/activity';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { SandboxActivities } from '../../activities/sandbox-activities';
import { parsePipeline } from '../../core/pipeline-spec';
import { hostQueue, ORCHESTRATION_QUEUE, SANDBOX_QUEUE, type PipelineInput, type RunResult, type StepInput, type StepResult } from '../../core/run-types';
import { ROOT } from '../../infra/root';
import { noopOrchestrationActivities, useWorkflowTestEnv } from '../helpers/workflow-env';

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
  const orchestration = noopOrchestrationActivities(parsePipeline(yaml), {
    finishRun: async (a) => {
      rec.finished = { status: a.status, message: a.message };
    },
    skipJob: async (a) => {
      rec.skipped.push(a.job);
    },
  });
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

const DYNAMIC = `
jobs:
  setup:
    outputs: { targets: "\${{ steps.plan.outputs.targets }}" }
    steps:
      - id: plan
        name: plan
        run: plan
  build:
    needs: [setup]
    matrix: \${{ fromJSON(needs.setup.outputs.targets) }}
    outputs: { built: "\${{ steps.b.outputs.built }}" }
    steps:
      - id: b
        name: b
        run: build \${{ matrix.os }} \${{ matrix.arch }}
  ship:
    needs: [build]
    steps:
      - name: s
        run: ship \${{ needs.build.outputs.built }}
`;

test('a dynamic matrix from an upstream output runs one instance per combination, then the job that needs it (history recorded)', async () => {
  const targets = JSON.stringify({ os: ['linux', 'mac'], arch: ['x64', 'arm'], exclude: [{ os: 'mac', arch: 'x64' }], 'max-parallel': 2 });
  const { result, rec, handle } = await run(
    DYNAMIC,
    async (s): Promise<{ outputs?: Record<string, string> }> => {
      if (s.step.name === 'plan') return { outputs: { targets } };
      if (s.step.name !== 'b') return {};
      await sleep(200);
      return { outputs: { built: s.job.name } };
    },
    'pipeline-dynamic-matrix',
  );
  expect(result.status).toBe('success');
  expect(rec.maxConcurrent).toBe(2);
  expect(rec.ran).toHaveLength(5);
  expect(rec.ran[0]).toBe('setup/plan: plan');
  // The instances run two at a time, in either order.
  expect(rec.ran.slice(1, 4).sort()).toEqual([
    'build (linux, arm)/b: build linux arm [MATRIX_OS=linux MATRIX_ARCH=arm]',
    'build (linux, x64)/b: build linux x64 [MATRIX_OS=linux MATRIX_ARCH=x64]',
    'build (mac, arm)/b: build mac arm [MATRIX_OS=mac MATRIX_ARCH=arm]',
  ]);
  // The job that needs the matrix gets its instances' outputs merged in order (the last one's here).
  expect(rec.ran[4]).toBe('ship/s: ship build (mac, arm)');
  if (process.env.DOTGIT_RECORD_HISTORY === '1') await fs.writeFile(path.join(__dirname, 'histories', 'h3-pipeline-dynamic-matrix-v1.json'), historyToJSON(await handle.fetchHistory()));
});

test('a dynamic matrix that is not JSON fails its job with the problem (its dependants skipped); the run says why', async () => {
  const { result, rec } = await run(DYNAMIC, (s) => (s.step.name === 'plan' ? { outputs: { targets: '[linux' } } : {}), 'pipeline-dynamic-matrix-bad');
  expect(result.status).toBe('failure');
  expect(result.message).toMatch(/^failed jobs: build; build: matrix: needs\.setup\.outputs\.targets is not JSON \(.+\): "\[linux"$/);
  expect(rec.ran).toEqual(['setup/plan: plan']);
  expect(rec.skipped).toEqual(['ship']);
});

const AXES = `
jobs:
  setup:
    outputs: { os: "\${{ steps.plan.outputs.os }}", nodes: "\${{ steps.plan.outputs.nodes }}" }
    steps:
      - id: plan
        name: plan
        run: plan
  build:
    needs: [setup]
    matrix:
      os: \${{ fromJSON(needs.setup.outputs.os) }}
      node: \${{ fromJSON(needs.setup.outputs.nodes) }}
      db: [pg]
    steps:
      - name: b
        run: build \${{ matrix.os }} \${{ matrix.node }} \${{ matrix.db }}
  ship:
    needs: [build]
    steps:
      - name: s
        run: ship
`;

test('a matrix written axis by axis takes each fromJSON axis from its own output (ADR 0044; history recorded)', async () => {
  const { result, rec, handle } = await run(
    AXES,
    (s) => (s.step.name === 'plan' ? { outputs: { os: '["linux", "mac"]', nodes: '[18, 20]' } } : {}),
    'pipeline-matrix-fromjson-axes',
  );
  expect(result.status).toBe('success');
  expect(rec.ran[0]).toBe('setup/plan: plan');
  expect(rec.ran.slice(1, 5).sort()).toEqual([
    'build (linux, 18, pg)/b: build linux 18 pg [MATRIX_OS=linux MATRIX_NODE=18 MATRIX_DB=pg]',
    'build (linux, 20, pg)/b: build linux 20 pg [MATRIX_OS=linux MATRIX_NODE=20 MATRIX_DB=pg]',
    'build (mac, 18, pg)/b: build mac 18 pg [MATRIX_OS=mac MATRIX_NODE=18 MATRIX_DB=pg]',
    'build (mac, 20, pg)/b: build mac 20 pg [MATRIX_OS=mac MATRIX_NODE=20 MATRIX_DB=pg]',
  ]);
  expect(rec.ran[5]).toBe('ship/s: ship');
  expect(rec.ran).toHaveLength(6);
  if (process.env.DOTGIT_RECORD_HISTORY === '1') await fs.writeFile(path.join(__dirname, 'histories', 's8-pipe-matrix-fromjson-axes-v1.json'), historyToJSON(await handle.fetchHistory()));
});
