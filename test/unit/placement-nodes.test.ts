import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { placementNodes } from '../../api/placement-nodes';

// The api's list of storage nodes to place new repositories on: the ids its configured git-servers
// name. A git-server that did not answer is asked again on the next creation, so a node that came
// back takes new repositories at once (CI: a restarted node was passed over for a cached 5 s).

const SECRET = 'placement-nodes-test-secret-0123456789';

function nodeServer(id: string): http.Server {
  return http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(req.url === '/internal/node' ? JSON.stringify({ id }) : '{}');
  });
}

async function listen(server: http.Server, port = 0): Promise<number> {
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

const closing: http.Server[] = [];
afterEach(async () => {
  await Promise.all(closing.splice(0).map((s) => new Promise((r) => s.close(r))));
});

test('a git-server that did not answer is asked again on the next call; one that answered stays listed', async () => {
  const a = nodeServer('node-a');
  closing.push(a);
  const aPort = await listen(a);
  // b's port, then closed: its git-server is down for the first call.
  const probe = http.createServer();
  const bPort = await listen(probe);
  await new Promise((r) => probe.close(r));
  const nodes = placementNodes([`http://127.0.0.1:${aPort}`, `http://127.0.0.1:${bPort}/`], SECRET);
  expect(await nodes()).toEqual(['node-a']);

  const b = nodeServer('node-b');
  closing.push(b);
  await listen(b, bPort);
  expect((await nodes()).sort()).toEqual(['node-a', 'node-b']);
});

test('when every git-server answered, the list is kept for a while (not asked per creation)', async () => {
  let asked = 0;
  const a = http.createServer((_req, res) => {
    asked++;
    res.end(JSON.stringify({ id: 'node-a' }));
  });
  closing.push(a);
  const port = await listen(a);
  const nodes = placementNodes([`http://127.0.0.1:${port}`], SECRET);
  expect(await nodes()).toEqual(['node-a']);
  expect(await nodes()).toEqual(['node-a']);
  expect(asked).toBe(1);
});
