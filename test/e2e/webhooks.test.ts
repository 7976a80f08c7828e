import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, uniqueName, waitForRun, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom, writeFiles } from '../helpers/git';
import { scrape } from '../helpers/prom';

// Webhooks on real parts: a push and its pipeline → outbox relay / pipeline workflow →
// webhookDispatch → worker activity → SSRF guard → a real receiver on 127.0.0.1 (allow-listed by
// the test harness), which checks the signature with the secret.

interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  json: any;
  signatureValid: boolean;
}

const SECRET = 'shh-a-webhook-secret';
const received: Received[] = [];
const failuresLeft = new Map<string, number>();
let server: http.Server;
let port: number;
let owner: TenantFixture;

function verify(secret: string, body: string, header: string | undefined): boolean {
  const expected = Buffer.from(`sha256=${createHmac('sha256', secret).update(body).digest('hex')}`);
  const got = Buffer.from(header ?? '');
  return got.length === expected.length && timingSafeEqual(got, expected);
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const hooksUrl = (repo: string) => `/api/v1/repos/${owner.tenant}/${repo}/webhooks`;
const receiverUrl = (path: string, host = '127.0.0.1') => `http://${host}:${port}${path}`;

async function newRepo(files: Record<string, string>): Promise<{ name: string; dir: string }> {
  const name = uniqueName('hooks');
  const r = await api('POST', '/api/v1/repos', { token: owner.token, body: { owner: owner.tenant, name, visibility: 'private' } });
  expect(r.status).toBe(201);
  return { name, dir: await localRepo(files) };
}

async function addHook(repo: string, body: Record<string, unknown>): Promise<number> {
  const r = await api('POST', hooksUrl(repo), { token: owner.token, body });
  expect(r.status).toBe(201);
  return r.body.id;
}

async function deliveries(repo: string, id: number): Promise<any[]> {
  const r = await api('GET', `${hooksUrl(repo)}/${id}/deliveries`, { token: owner.token });
  expect(r.status).toBe(200);
  return r.body.deliveries;
}

beforeAll(async () => {
  owner = await createTenantWithAdmin();
  server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      const path = req.url ?? '';
      received.push({ path, headers: req.headers, body, json, signatureValid: verify(SECRET, body, req.headers['x-hub-signature-256'] as string | undefined) });
      const left = failuresLeft.get(path) ?? 0;
      if (left > 0) {
        failuresLeft.set(path, left - 1);
        res.writeHead(500).end('try again later');
      } else {
        res.writeHead(200).end('ok');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});

afterAll(() => {
  server?.close();
});

const PIPELINE = `jobs:\n  build:\n    steps:\n      - name: hello\n        run: echo hello\n`;

test('push and workflow_run events reach the receiver, signed with the secret; the run sets the commit status', async () => {
  const { name, dir } = await newRepo({ '.dotgit/pipeline.yml': PIPELINE, 'README.md': 'hi\n' });
  const id = await addHook(name, { url: receiverUrl('/ci'), secret: SECRET, events: ['push', 'workflow_run'] });

  // Secrets are never returned.
  const list = await api('GET', hooksUrl(name), { token: owner.token });
  expect(list.status).toBe(200);
  expect(list.body.webhooks).toEqual([expect.objectContaining({ id, url: receiverUrl('/ci'), events: ['push', 'workflow_run'] })]);
  expect(list.text).not.toContain(SECRET);

  const push = await git(['push', cloneUrl(owner.tenant, name, owner.token), 'main'], dir);
  expect(push.code).toBe(0);
  const [runId] = runIdsFrom(push.stderr);
  const sha = (await git(['rev-parse', 'HEAD'], dir)).stdout.trim();
  const run = await waitForRun(runId, owner.token);
  expect(run.status).toBe('success');

  const ours = () => received.filter((r) => r.path === '/ci' && r.json?.repository?.name === name);
  const pushed = await waitFor('the push event', () => ours().find((r) => r.headers['x-github-event'] === 'push'));
  expect(pushed.signatureValid).toBe(true);
  expect(pushed.headers['user-agent']).toBe('dotgit-Hookshot');
  expect(pushed.headers['x-github-delivery']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  expect(pushed.headers['x-github-hook-id']).toBe(String(id));
  expect(pushed.json).toMatchObject({
    ref: 'refs/heads/main',
    before: '0'.repeat(40),
    after: sha,
    created: true,
    deleted: false,
    head_commit: { id: sha, message: 'initial', added: expect.arrayContaining(['README.md', '.dotgit/pipeline.yml']) },
    repository: { full_name: `${owner.tenant}/${name}`, private: true, default_branch: 'main', owner: { login: owner.tenant } },
    pusher: { name: owner.username },
    sender: { login: owner.username, id: expect.any(Number) },
  });
  expect(pushed.json.commits.map((c: { id: string }) => c.id)).toEqual([sha]);

  const completed = await waitFor('workflow_run completed', () => ours().find((r) => r.headers['x-github-event'] === 'workflow_run' && r.json.action === 'completed'));
  expect(completed.signatureValid).toBe(true);
  expect(completed.json.workflow_run).toMatchObject({ node_id: runId, head_sha: sha, head_branch: 'main', status: 'completed', conclusion: 'success', event: 'push' });
  expect(completed.json.sender.login).toBe(owner.username);
  const requested = await waitFor('workflow_run requested', () => ours().find((r) => r.headers['x-github-event'] === 'workflow_run' && r.json.action === 'requested'));
  expect(requested.json.workflow_run.node_id).toBe(runId);
  expect(typeof requested.json.workflow_run.id).toBe('number');
  expect(requested.headers['x-github-delivery']).not.toBe(completed.headers['x-github-delivery']);

  // The delivery log shows each, one successful attempt apiece.
  const log = await waitFor('three logged deliveries', async () => {
    const d = await deliveries(name, id);
    return d.length >= 3 ? d : undefined;
  });
  expect(log.map((d) => [d.event, d.action, d.attempt, d.outcome, d.responseStatus]).sort()).toEqual(
    [
      ['push', null, 1, 'success', 200],
      ['workflow_run', 'completed', 1, 'success', 200],
      ['workflow_run', 'requested', 1, 'success', 200],
    ].sort(),
  );

  // Commit status: one status per run, combined state from them.
  const status = await api('GET', `/api/v1/repos/${owner.tenant}/${name}/commits/${sha}/status`, { token: owner.token });
  expect(status.status).toBe(200);
  expect(status.body).toMatchObject({ state: 'success', sha, total_count: 1, statuses: [{ id: runId, state: 'success', context: 'dotgit/pipeline (refs/heads/main)' }] });

  // A failing run makes its commit's state failure.
  await writeFiles(dir, { '.dotgit/pipeline.yml': `jobs:\n  build:\n    steps:\n      - name: broken\n        run: exit 3\n` });
  await git(['commit', '-qam', 'break it'], dir);
  const push2 = await git(['push', cloneUrl(owner.tenant, name, owner.token), 'main'], dir);
  const [failedRun] = runIdsFrom(push2.stderr);
  expect((await waitForRun(failedRun, owner.token)).status).toBe('failure');
  const sha2 = (await git(['rev-parse', 'HEAD'], dir)).stdout.trim();
  const status2 = await api('GET', `/api/v1/repos/${owner.tenant}/${name}/commits/${sha2}/status`, { token: owner.token });
  expect(status2.body).toMatchObject({ state: 'failure', total_count: 1, statuses: [{ id: failedRun, state: 'failure' }] });
  const failedPayload = await waitFor('workflow_run completed (failure)', () => ours().find((r) => r.json?.workflow_run?.node_id === failedRun && r.json.action === 'completed'));
  expect(failedPayload.json.workflow_run.conclusion).toBe('failure');
  const pushed2 = ours().find((r) => r.headers['x-github-event'] === 'push' && r.json.after === sha2);
  expect(pushed2?.json).toMatchObject({ before: sha, created: false, forced: false, commits: [{ id: sha2, message: 'break it', modified: ['.dotgit/pipeline.yml'] }] });
});

test('commit status of a commit without runs is pending and empty; a bad sha is a 400', async () => {
  const { name } = await newRepo({ 'a.txt': 'a\n' });
  const none = await api('GET', `/api/v1/repos/${owner.tenant}/${name}/commits/${'e'.repeat(40)}/status`, { token: owner.token });
  expect(none.status).toBe(200);
  expect(none.body).toMatchObject({ state: 'pending', total_count: 0, statuses: [] });
  const bad = await api('GET', `/api/v1/repos/${owner.tenant}/${name}/commits/HEAD/status`, { token: owner.token });
  expect(bad.status).toBe(400);
});

test('a receiver answering 500 is retried with the same delivery id; the log shows both attempts (push without a pipeline)', async () => {
  const { name, dir } = await newRepo({ 'plain.txt': 'no pipeline here\n' });
  failuresLeft.set('/flaky', 1);
  const id = await addHook(name, { url: receiverUrl('/flaky'), secret: SECRET, events: ['push'] });
  // The worker counts deliveries by outcome (issue 14 item 2); other suites' deliveries only add.
  const counted = async () => {
    const s = await scrape(`http://127.0.0.1:${platformInfo().workerPort}/metrics`);
    return { failure: s.sum('dotgit_webhook_deliveries_total', { event: 'push', outcome: 'failure' }) ?? 0, success: s.sum('dotgit_webhook_deliveries_total', { event: 'push', outcome: 'success' }) ?? 0 };
  };
  const before = await counted();
  const push = await git(['push', cloneUrl(owner.tenant, name, owner.token), 'main'], dir);
  expect(push.code).toBe(0);
  expect(runIdsFrom(push.stderr)).toEqual([]);

  const log = await waitFor('two attempts', async () => {
    const d = await deliveries(name, id);
    return d.some((x) => x.outcome === 'success') ? d : undefined;
  });
  const attempts = log.map((d) => ({ attempt: d.attempt, outcome: d.outcome, status: d.responseStatus, id: d.deliveryId })).sort((a, b) => a.attempt - b.attempt);
  expect(attempts).toEqual([
    { attempt: 1, outcome: 'failure', status: 500, id: attempts[0].id },
    { attempt: 2, outcome: 'success', status: 200, id: attempts[0].id },
  ]);
  expect(log.find((d) => d.attempt === 1).error).toContain('500');
  const hits = received.filter((r) => r.path === '/flaky');
  expect(hits).toHaveLength(2);
  expect(new Set(hits.map((h) => h.headers['x-github-delivery']))).toEqual(new Set([attempts[0].id]));
  expect(hits.every((h) => h.signatureValid && h.body === hits[0].body)).toBe(true);
  const after = await counted();
  expect(after.failure).toBeGreaterThanOrEqual(before.failure + 1);
  expect(after.success).toBeGreaterThanOrEqual(before.success + 1);
});

test('a host name resolving to a private address is refused after resolution, never contacted, never retried', async () => {
  const { name, dir } = await newRepo({ 'x.txt': 'x\n' });
  // Same port as the receiver: were the guard to let it through, the receiver would see /ssrf.
  const id = await addHook(name, { url: receiverUrl('/ssrf', 'localhost'), secret: SECRET, events: ['push'] });
  const push = await git(['push', cloneUrl(owner.tenant, name, owner.token), 'main'], dir);
  expect(push.code).toBe(0);
  const [refused] = await waitFor('the refusal', async () => {
    const d = await deliveries(name, id);
    return d.length > 0 ? d : undefined;
  });
  expect(refused).toMatchObject({ event: 'push', attempt: 1, outcome: 'refused', responseStatus: null });
  expect(refused.error).toMatch(/localhost resolves to .*loopback/);
  // Refusals are final: no second attempt follows (the first retry would come after 2 s).
  await new Promise((r) => setTimeout(r, 3000));
  expect(await deliveries(name, id)).toHaveLength(1);
  expect(received.filter((r) => r.path === '/ssrf')).toEqual([]);
});

test('webhook administration: validation, repository admins only, delete', async () => {
  const { name } = await newRepo({ 'x.txt': 'x\n' });
  const good = { url: 'https://hooks.example.com/dotgit', secret: 's3cret', events: ['push'] };
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ ...good, url: 'ftp://hooks.example.com/' }, /http or https/],
    [{ ...good, url: 'not a url' }, /not a valid URL/],
    [{ ...good, url: 'http://user:pw@hooks.example.com/' }, /credentials/],
    [{ ...good, url: 'http://169.254.169.254/latest/meta-data/' }, /metadata/],
    [{ ...good, url: 'http://10.1.2.3/' }, /private/],
    [{ ...good, url: 'http://[::1]:8080/' }, /loopback/],
    [{ ...good, events: [] }, /events/],
    [{ ...good, events: ['push', 'pull_request'] }, /events/],
    [{ ...good, events: 'push' }, /events/],
    [{ ...good, secret: '' }, /secret/],
    [{ url: good.url, events: good.events }, /secret/],
  ];
  for (const [body, message] of bad) {
    const r = await api('POST', hooksUrl(name), { token: owner.token, body });
    expect([r.status, r.body.error?.message]).toEqual([400, expect.stringMatching(message)]);
  }

  // A member of the tenant (write access) may not manage hooks; a stranger cannot see the repository.
  const admin = platformInfo().adminToken;
  const member = uniqueName('m');
  expect((await api('POST', `/api/v1/tenants/${owner.tenant}/users`, { token: admin, body: { username: member, role: 'member' } })).status).toBe(201);
  const memberToken = (await api('POST', '/api/v1/tokens', { token: admin, body: { username: member, scopes: ['read', 'write', 'admin'] } })).body.token;
  const stranger = await createTenantWithAdmin();
  expect((await api('POST', hooksUrl(name), { token: memberToken, body: good })).status).toBe(403);
  expect((await api('GET', hooksUrl(name), { token: memberToken })).status).toBe(403);
  expect((await api('POST', hooksUrl(name), { token: stranger.token, body: good })).status).toBe(404);
  expect((await api('POST', hooksUrl(name), { body: good })).status).toBe(401);
  // An admin's token without the admin scope is not enough either.
  const readWrite = (await api('POST', '/api/v1/tokens', { token: admin, body: { username: owner.username, scopes: ['read', 'write'] } })).body.token;
  expect((await api('POST', hooksUrl(name), { token: readWrite, body: good })).status).toBe(403);

  const id = await addHook(name, good);
  expect((await api('GET', `${hooksUrl(name)}/${id}/deliveries`, { token: memberToken })).status).toBe(403);
  expect((await api('DELETE', `${hooksUrl(name)}/${id}`, { token: memberToken })).status).toBe(403);
  expect((await api('GET', `${hooksUrl(name)}/${id}`, { token: owner.token })).body).toMatchObject({ id, url: good.url, events: ['push'] });
  expect((await api('DELETE', `${hooksUrl(name)}/${id}`, { token: owner.token })).status).toBe(204);
  expect((await api('DELETE', `${hooksUrl(name)}/${id}`, { token: owner.token })).status).toBe(404);
  expect((await api('GET', `${hooksUrl(name)}/${id}/deliveries`, { token: owner.token })).status).toBe(404);
  expect((await api('GET', `${hooksUrl(name)}/abc/deliveries`, { token: owner.token })).status).toBe(400);
  expect((await api('GET', hooksUrl(name), { token: owner.token })).body.webhooks).toEqual([]);
});
