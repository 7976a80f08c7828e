import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client, Connection } from '@temporalio/client';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, uniqueName, waitForRun, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom } from '../helpers/git';

// Issue 11 (Temporal actions per run): a run starts its two workflow_run dispatch children only
// when the repository has a webhook that wants workflow_run (or every event); on the real platform,
// with the real loadPipeline answering.

const PIPELINE = `jobs:\n  build:\n    steps:\n      - name: hello\n        run: "true"\n`;
let owner: TenantFixture;
let receiver: http.Server;
let port: number;
let connection: Connection;
let client: Client;

beforeAll(async () => {
  owner = await createTenantWithAdmin();
  receiver = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(204).end());
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  port = (receiver.address() as AddressInfo).port;
  const info = platformInfo();
  connection = await Connection.connect({ address: info.temporalAddress });
  client = new Client({ connection, namespace: info.namespace });
});

afterAll(async () => {
  await connection?.close();
  receiver?.close();
});

/** Pushes a one-step pipeline to a new repository with the given hook events (none: no hook); the run's id once its workflow has ended. */
async function runWithHook(events: string[] | undefined): Promise<string> {
  const name = uniqueName('dispatch');
  expect((await api('POST', '/api/v1/repos', { token: owner.token, body: { owner: owner.tenant, name, visibility: 'private' } })).status).toBe(201);
  if (events) {
    const hook = await api('POST', `/api/v1/repos/${owner.tenant}/${name}/webhooks`, { token: owner.token, body: { url: `http://127.0.0.1:${port}/hook`, secret: 's3cret-hook', events } });
    expect(hook.status).toBe(201);
  }
  const dir = await localRepo({ '.dotgit/pipeline.yml': PIPELINE });
  const push = await git(['push', cloneUrl(owner.tenant, name, owner.token), 'main'], dir);
  expect(push.code).toBe(0);
  const [runId] = runIdsFrom(push.stderr);
  expect((await waitForRun(runId, owner.token)).status).toBe('success');
  // The children start at the end of the workflow, after the run is recorded as finished.
  await client.workflow.getHandle(runId).result();
  return runId;
}

async function dispatchChildren(runId: string): Promise<string[]> {
  const found: string[] = [];
  for (const action of ['requested', 'completed']) {
    try {
      const d = await client.workflow.getHandle(`webhook:${runId}:${action}`).describe();
      expect(d.type).toBe('webhookDispatch');
      found.push(action);
    } catch (err) {
      expect((err as Error).name).toBe('WorkflowNotFoundError');
    }
  }
  return found;
}

test('a repository without webhooks: the run starts no webhook-dispatch child', async () => {
  expect(await dispatchChildren(await runWithHook(undefined))).toEqual([]);
});

test('a repository whose only webhook wants push events: no workflow_run dispatch child either', async () => {
  expect(await dispatchChildren(await runWithHook(['push']))).toEqual([]);
});

test('a webhook for workflow_run, or for every event (*): both children, requested and completed', async () => {
  expect(await dispatchChildren(await runWithHook(['workflow_run']))).toEqual(['requested', 'completed']);
  expect(await dispatchChildren(await runWithHook(['*']))).toEqual(['requested', 'completed']);
});
