import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fetchFromGitServer } from '../../core/git-upstreams';

// core/git-upstreams.ts: a call to "any git-server" goes on to the next instance when one cannot be
// reached or answers 503 (draining), and takes any other answer as the answer. Real sockets.

const servers: http.Server[] = [];
async function server(status: number, body: string): Promise<string> {
  const s = http.createServer((_req, res) => res.writeHead(status, { 'content-type': 'text/plain' }).end(body));
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

/** A URL nothing listens on: a port taken and released. */
async function closedUrl(): Promise<string> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return `http://127.0.0.1:${port}`;
}

afterAll(() => servers.forEach((s) => s.close()));

test('a refused connection or a 503 goes on to the next instance, whichever comes first', async () => {
  const good = await server(200, 'ok');
  const down = await closedUrl();
  const draining = await server(503, 'draining');
  for (let i = 0; i < 3; i++) {
    const res = await fetchFromGitServer([down, draining, good], '/x');
    expect([res.status, await res.text()]).toEqual([200, 'ok']);
  }
});

test('any other answer is the answer; nothing reachable is an error naming the cause', async () => {
  const notFound = await server(404, 'no such commit');
  const good = await server(200, 'ok');
  // Round robin: one of the two calls starts at the 404 instance and must return it, not try the next.
  const answers = [await fetchFromGitServer([notFound, good], '/x'), await fetchFromGitServer([notFound, good], '/x')].map((r) => r.status).sort();
  expect(answers).toEqual([200, 404]);
  await expect(fetchFromGitServer([await closedUrl()], '/x')).rejects.toThrow(/no git-server answered: .*ECONNREFUSED/);
});
