import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, uniqueName, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom } from '../helpers/git';

// The request id and the trace id the gateway sends reach the upstreams' log lines: the api's and
// the git-server's lines for a request are written by a child logger that carries both.

let t: TenantFixture;
beforeAll(async () => {
  t = await createTenantWithAdmin();
});

/** JSON lines of a service's log that carry `requestId`, polled until at least one matches `pred`. */
async function linesOf(service: string, requestId: string, pred: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>[]> {
  const file = path.join(platformInfo().dataDir, 'logs', `${service}.log`);
  for (let i = 0; i < 40; i++) {
    const lines = readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l.includes(requestId))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    if (lines.some(pred)) return lines;
    await new Promise((r) => setTimeout(r, 100));
  }
  return [];
}

const ids = () => ({ requestId: `req-${randomBytes(8).toString('hex')}`, traceId: randomBytes(16).toString('hex') });

test('an api request logs with the request id and the trace id', async () => {
  const { requestId, traceId } = ids();
  const res = await api('POST', '/api/v1/repos', {
    token: t.token,
    body: { owner: t.tenant, name: uniqueName('logged'), visibility: 'private' },
    headers: { 'x-request-id': requestId, traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
  });
  expect(res.status).toBe(201);
  const lines = await linesOf('api', requestId, (l) => l.msg === 'request');
  const line = lines.find((l) => l.msg === 'request');
  expect(line).toEqual(expect.objectContaining({ service: 'api', requestId, traceId, tenant: t.tenant, method: 'POST', path: '/api/v1/repos', status: 201 }));
  // Every line of that request carries both.
  expect(lines.every((l) => l.requestId === requestId && l.traceId === traceId)).toBe(true);
});

test('a push logs on the git-server with its request id, next to the runs it started', async () => {
  const repo = uniqueName('pushlog');
  expect((await api('POST', '/api/v1/repos', { token: t.token, body: { owner: t.tenant, name: repo, visibility: 'private' } })).status).toBe(201);
  const dir = await localRepo({ 'README.md': 'hello\n' });
  const { requestId, traceId } = ids();
  const push = await git(['-c', `http.extraHeader=X-Request-Id: ${requestId}`, '-c', `http.extraHeader=traceparent: 00-${traceId}-00f067aa0ba902b7-01`, 'push', cloneUrl(t.tenant, repo, t.token), 'main'], dir);
  expect(push.code).toBe(0);
  // The request's own line is written once its answer has gone out, after post-receive's: waited for.
  const lines = await linesOf('git-server', requestId, (l) => l.msg === 'request');
  expect(lines.find((l) => l.msg === 'push recorded')).toEqual(expect.objectContaining({ requestId, traceId, repo: `${t.tenant}/${repo}`, runs: [] }));
  expect(lines.find((l) => l.msg === 'request')).toEqual(expect.objectContaining({ requestId, traceId, method: 'POST', path: `/${t.tenant}/${repo}.git/git-receive-pack`, status: 200 }));
  // Every line of the push request names the repository (its route's :owner/:repo; ADR 0028).
  expect(lines.filter((l) => l.repo !== `${t.tenant}/${repo}`)).toEqual([]);
});

test("an api request's lines name the repository it is about: by its route, or once a run read by id is found (ADR 0028)", async () => {
  const repo = uniqueName('repolog');
  expect((await api('POST', '/api/v1/repos', { token: t.token, body: { owner: t.tenant, name: repo, visibility: 'private' } })).status).toBe(201);
  const byRoute = ids();
  const patched = await api('PATCH', `/api/v1/repos/${t.tenant}/${repo}`, { token: t.token, body: {}, headers: { 'x-request-id': byRoute.requestId } });
  expect(patched.status).toBeLessThan(500);
  const routeLines = await linesOf('api', byRoute.requestId, (l) => l.msg === 'request');
  expect(routeLines.find((l) => l.msg === 'request')).toEqual(expect.objectContaining({ requestId: byRoute.requestId, tenant: t.tenant, repo: `${t.tenant}/${repo}` }));
  // A run by id: its path names no repository; the lines after the run is found do.
  const work = await localRepo({ '.dotgit/pipeline.yml': 'jobs:\n  build:\n    steps:\n      - run: sleep 30\n' });
  const push = await git(['push', cloneUrl(t.tenant, repo, t.token), 'main'], work);
  expect(push.code).toBe(0);
  const [runId] = runIdsFrom(push.stderr);
  const byId = ids();
  expect((await api('POST', `/api/v1/runs/${runId}/cancel`, { token: t.token, headers: { 'x-request-id': byId.requestId } })).status).toBe(202);
  const idLines = await linesOf('api', byId.requestId, (l) => l.msg === 'request');
  expect(idLines.find((l) => l.msg === 'request')).toEqual(expect.objectContaining({ requestId: byId.requestId, repo: `${t.tenant}/${repo}`, status: 202 }));
});
