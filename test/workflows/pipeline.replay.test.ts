import path from 'node:path';
import { readdirSync, readFileSync } from 'node:fs';
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

const HISTORIES = path.join(__dirname, 'histories');
const files = readdirSync(HISTORIES).filter((f) => f.endsWith('.json')).sort();

test('there are recorded histories from before and after the last workflow change', () => {
  expect(files).toEqual(expect.arrayContaining(['pipeline-dag.json', 'pipeline-dag-v2.json', 'pipeline-dag-v3.json', 'pipeline-dag-v4.json', 'pipeline-dag-v5.json', 'pipeline-dag-v6.json', 'pipeline-dag-v7.json', 'pipeline-failed-v8.json', 's8-pipe-matrix-fromjson-axes-v1.json', 'deploy-approval-rollback.json', 'deploy-failed-v2.json']));
});

test.each(files)('%s replays against the current workflow code', async (file) => {
  const history = historyFromJSON(JSON.parse(readFileSync(path.join(HISTORIES, file), 'utf8')));
  expect(history.events?.length).toBeGreaterThan(10);
  await Worker.runReplayHistory({ workflowsPath: path.join(ROOT, 'workflows', 'index.ts') }, history, file);
});
