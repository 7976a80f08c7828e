import path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import type { OrchestrationActivities } from '../../activities/orchestration-activities';
import { expandDynamicMatrix, type PipelineSpec } from '../../core/pipeline-spec';
import { SEARCH_ATTRIBUTES } from '../../core/search-attributes';
import { ensureTemporalCli } from '../../infra/provision/temporal';
import { ROOT } from '../../infra/root';

/**
 * A Temporal dev server for workflow tests, from the same CLI `npm start` uses (existing-path),
 * with our search attributes registered (workflows upsert DotgitStatus).
 */
export async function startWorkflowTestEnv(): Promise<TestWorkflowEnvironment> {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const cli = await ensureTemporalCli({ toolsDir: path.join(ROOT, '.tools'), log: { info: () => undefined, warn: () => undefined, debug: () => undefined } });
  return TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'existing-path', path: cli.cliPath }, searchAttributes: Object.values(SEARCH_ATTRIBUTES) },
  });
}

/**
 * Registers beforeAll/afterAll for a file's workflow tests and returns a getter of the environment
 * (set once beforeAll has run).
 */
export function useWorkflowTestEnv(): () => TestWorkflowEnvironment {
  let env: TestWorkflowEnvironment | undefined;
  beforeAll(async () => {
    env = await startWorkflowTestEnv();
  }, 120_000);
  afterAll(async () => {
    await env?.teardown();
  });
  return () => env!;
}

/**
 * The pipeline workflow's orchestration activities as no-ops, loading `spec` (no webhooks): the
 * workflow tests replace only what they record (`overrides`), so a new activity is added here once.
 */
export function noopOrchestrationActivities(spec: PipelineSpec, overrides: Partial<OrchestrationActivities> = {}): OrchestrationActivities {
  return {
    loadPipeline: async () => ({ ok: true, spec, workflowRunHooks: false }),
    startRun: async () => undefined,
    finishRun: async () => undefined,
    failStep: async () => undefined,
    skipJob: async () => undefined,
    skipRemainingSteps: async () => undefined,
    invalidateRepoCaches: async () => undefined,
    recordJobOutputs: async () => undefined,
    reusedJobs: async () => ({}),
    // The real expansion (pure): a dynamic matrix job's instances, or its problem.
    expandMatrixJob: async (a) => {
      const built = expandDynamicMatrix(a.job, a.json, a.otherJobs, a.values);
      return 'problem' in built ? { ok: false, message: built.problem } : { ok: true, jobs: built.jobs };
    },
    ...overrides,
  };
}
