import path from 'node:path';
import { readFileSync } from 'node:fs';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { ROOT } from '../../infra/root';

// Replays recorded `pipeline` histories against the current workflow code: a change that would
// break running workflows (non-determinism) fails here. Record anew with
// `DOTGIT_RECORD_HISTORY=1 npx jest test/workflows/pipeline.workflow.test.ts` only for intended,
// versioned changes.

beforeAll(() => {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
});

test('recorded pipeline histories replay against the current workflow code', async () => {
  const history = historyFromJSON(JSON.parse(readFileSync(path.join(__dirname, 'histories', 'pipeline-dag.json'), 'utf8')));
  expect(history.events?.length).toBeGreaterThan(10);
  await Worker.runReplayHistory({ workflowsPath: path.join(ROOT, 'workflows', 'index.ts') }, history, 'pipeline-dag');
});
