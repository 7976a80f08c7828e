import path from 'node:path';
import { promises as fs } from 'node:fs';
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { SandboxActivities } from '../../activities/sandbox-activities';
import { parsePipeline } from '../../core/pipeline-spec';
import { hostQueue, ORCHESTRATION_QUEUE, SANDBOX_QUEUE, type PipelineInput, type RunResult, type StepInput, type StepResult } from '../../core/run-types';
import { ROOT } from '../../infra/root';
import { noopOrchestrationActivities, useWorkflowTestEnv } from '../helpers/workflow-env';

// Issue 17 items 3 and 5 in the pipeline workflow: a job's cache is restored by its first step and
// saved by its last on a miss (never on a hit); a re-run attempt reuses the jobs an earlier attempt
// ran successfully, with their kept outputs, and runs the others. Histories: record anew with
// DOTGIT_RECORD_HISTORY=1 npx jest test/workflows/pipeline-cache-rerun.workflow.test.ts

const WORKFLOWS = path.join(ROOT, 'workflows', 'index.ts');
const HISTORIES = path.join(__dirname, 'histories');
const env = useWorkflowTestEnv();
const base: PipelineInput = { runId: 'pipeline:t:r:c', tenantId: 1, tenant: 't', repo: 'r', repoId: 1, ref: 'refs/heads/main', commit: 'c'.repeat(40) };

interface Recorder {
  steps: StepInput[];
  kept: { job: string; outputs: Record<string, string>; attempt: number }[];
  skipped: string[];
}

async function runResult(handle: WorkflowHandle): Promise<RunResult> {
  try {
    return (await handle.result()) as RunResult;
  } catch (err) {
    if (err instanceof WorkflowFailedError && err.cause instanceof ApplicationFailure && err.cause.type === 'RunFailed') return err.cause.details?.[0] as RunResult;
    throw err;
  }
}

async function run(yaml: string, input: PipelineInput, answer: (s: StepInput) => Partial<StepResult>, reused: Record<string, Record<string, string>> = {}) {
  const rec: Recorder = { steps: [], kept: [], skipped: [] };
  const orchestration = noopOrchestrationActivities(parsePipeline(yaml), {
    skipJob: async (a) => {
      rec.skipped.push(a.job);
    },
    recordJobOutputs: async (a) => {
      rec.kept.push({ job: a.job, outputs: a.outputs, attempt: a.attempt });
    },
    reusedJobs: async () => reused,
  });
  const sandbox: SandboxActivities = {
    runStep: async (s) => {
      rec.steps.push(s);
      return { exitCode: 0, timedOut: false, cancelled: false, attempt: s.attempt, host: 'host-a', hostQueue: hostQueue('host-a'), ...answer(s) };
    },
    cleanupWorkspace: async () => undefined,
  };
  const w1 = await Worker.create({ connection: env().nativeConnection, taskQueue: ORCHESTRATION_QUEUE, workflowsPath: WORKFLOWS, activities: orchestration });
  const w2 = await Worker.create({ connection: env().nativeConnection, taskQueue: SANDBOX_QUEUE, activities: sandbox });
  const w3 = await Worker.create({ connection: env().nativeConnection, taskQueue: hostQueue('host-a'), activities: sandbox });
  const handle = await env().client.workflow.start('pipeline', { workflowId: input.runId, taskQueue: ORCHESTRATION_QUEUE, args: [input] });
  const result = await w1.runUntil(w2.runUntil(w3.runUntil(() => runResult(handle))));
  return { result, rec, handle };
}

const CACHED = `
jobs:
  deps:
    cache: { key: "deps-\${{ hashFiles('package-lock.json') }}", paths: [node_modules], restore-keys: [deps-] }
    steps:
      - { name: install, run: npm ci }
      - { name: test, run: npm test }
  plain:
    steps: [{ name: only, run: "true" }]
`;

const cacheOf = (rec: Recorder, step: string) => rec.steps.find((s) => s.step.name === step)?.cache;

test('a cache miss: the first step restores, the last saves under the key the first computed; a job without cache gets neither (history recorded)', async () => {
  const { result, rec, handle } = await run(CACHED, { ...base, runId: 'pipeline:t:r:cache-miss' }, (s) => (s.cache?.restore ? { cache: { key: 'deps-abc', hit: false } } : {}));
  expect(result.status).toBe('success');
  expect(cacheOf(rec, 'install')).toEqual({ spec: { key: "deps-${{ hashFiles('package-lock.json') }}", paths: ['node_modules'], restoreKeys: ['deps-'] }, restore: true });
  expect(cacheOf(rec, 'test')).toEqual({ spec: expect.objectContaining({ paths: ['node_modules'] }), save: true, key: 'deps-abc' });
  expect(cacheOf(rec, 'only')).toBeUndefined();
  if (process.env.DOTGIT_RECORD_HISTORY === '1') await fs.writeFile(path.join(HISTORIES, 'pipeline-cache-v1.json'), historyToJSON(await handle.fetchHistory()));
});

test('a cache hit: nothing is saved after the job', async () => {
  const { result, rec } = await run(CACHED, { ...base, runId: 'pipeline:t:r:cache-hit' }, (s) => (s.cache?.restore ? { cache: { key: 'deps-abc', hit: true } } : {}));
  expect(result.status).toBe('success');
  expect(cacheOf(rec, 'install')?.restore).toBe(true);
  expect(cacheOf(rec, 'test')).toBeUndefined();
});

test('a one-step job restores and saves in that step (the activity decides on its own hit)', async () => {
  const yaml = `
jobs:
  one:
    cache: { key: k, paths: [a] }
    steps: [{ name: s, run: "true" }]
`;
  const { rec } = await run(yaml, { ...base, runId: 'pipeline:t:r:cache-one' }, () => ({ cache: { key: 'k', hit: false } }));
  expect(cacheOf(rec, 's')).toEqual({ spec: { key: 'k', paths: ['a'], restoreKeys: [] }, restore: true, save: true });
});

const LINEAGE = `
jobs:
  build:
    outputs: { version: "\${{ steps.v.outputs.version }}" }
    steps: [{ id: v, name: version, run: "echo version=1 >> $DOTGIT_OUTPUT" }]
  test:
    needs: [build]
    steps: [{ name: check, run: "echo \${{ needs.build.outputs.version }}" }]
  other:
    steps: [{ name: lint, run: "true" }]
`;

test('attempt 1 keeps job outputs for later attempts', async () => {
  const { result, rec } = await run(LINEAGE, { ...base, runId: 'pipeline:t:r:attempt-1' }, (s) => (s.step.name === 'version' ? { outputs: { version: '7.1' } } : {}));
  expect(result.status).toBe('success');
  expect(rec.kept).toEqual([{ job: 'build', outputs: { version: '7.1' }, attempt: 1 }]);
  expect(rec.steps.every((s) => s.runAttempt === undefined)).toBe(true);
});

test('a re-run (attempt 2) runs only the jobs not reused, handing on the reused job’s kept outputs (history recorded)', async () => {
  const { result, rec, handle } = await run(LINEAGE, { ...base, runId: 'pipeline:t:r:attempt-2', attempt: 2 }, () => ({}), { build: { version: '7.1' }, other: {} });
  expect(result.status).toBe('success');
  expect(rec.steps.map((s) => `${s.job.name}/${s.step.name}: ${s.step.run} (attempt ${s.runAttempt})`)).toEqual(['test/check: echo 7.1 (attempt 2)']);
  expect(rec.skipped).toEqual([]);
  if (process.env.DOTGIT_RECORD_HISTORY === '1') await fs.writeFile(path.join(HISTORIES, 'pipeline-rerun-v1.json'), historyToJSON(await handle.fetchHistory()));
});
