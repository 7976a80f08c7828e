import path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
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
