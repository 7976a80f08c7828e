import pg from 'pg';
import { randomUUID } from 'node:crypto';
import { platformInfo } from '../harness/platform-info';
import { api, createPrivateRepo, createTenantWithAdmin, uniqueName, type TenantFixture } from '../helpers/api-client';
import { deployOnlyPipeline } from '../helpers/deploy-pipeline';
import { cloneUrl, git, localRepo } from '../helpers/git';

// Issue 10: every POST of the api honours Idempotency-Key (draft-ietf-httpapi-idempotency-key-header).
// Same key, same caller, same request: the stored answer again, marked Idempotent-Replayed, and no
// second effect. The same key with another request: 422. The same key while the first is running: 409.

const PIPELINE = deployOnlyPipeline({ staging: { approval: true } });

let acme: TenantFixture;
let repo: string;
let db: pg.Pool;

beforeAll(async () => {
  db = new pg.Pool({ connectionString: platformInfo().databaseUrl, max: 2 });
  acme = await createTenantWithAdmin();
  repo = await createPrivateRepo(acme, 'idem');
  const work = await localRepo({ '.dotgit/pipeline.yml': PIPELINE });
  expect((await git(['push', cloneUrl(acme.tenant, repo, acme.token), 'main'], work)).code).toBe(0);
});

afterAll(async () => {
  await db.end();
});

const keyed = (key: string) => ({ 'idempotency-key': key });

/** The same POST twice with one key: the second is the first's answer, replayed. */
async function twice(path: string, token: string, body: unknown) {
  const key = randomUUID();
  const first = await api('POST', path, { token, body, headers: keyed(key) });
  const second = await api('POST', path, { token, body, headers: keyed(key) });
  expect(first.headers.get('idempotent-replayed')).toBeNull();
  expect(second.headers.get('idempotent-replayed')).toBe('true');
  expect(second.status).toBe(first.status);
  expect(second.body).toEqual(first.body);
  return { key, first, second };
}

test('POST /tenants twice with one key creates one tenant and answers the same 201 twice', async () => {
  const name = uniqueName('t');
  const { first } = await twice('/api/v1/tenants', platformInfo().adminToken, { name });
  expect(first.status).toBe(201);
  // Without the key it is a second request: the tenant exists once already.
  expect((await api('POST', '/api/v1/tenants', { token: platformInfo().adminToken, body: { name } })).status).toBe(409);
  expect((await db.query('SELECT count(*)::int AS n FROM tenants WHERE name = $1', [name])).rows[0].n).toBe(1);
});

test('POST /tokens twice with one key mints one token; the key is stored with its creation time', async () => {
  const { key, first, second } = await twice('/api/v1/tokens', acme.token, { scopes: ['read'], expiresAt: new Date(Date.now() + 3_600_000).toISOString() });
  expect(first.status).toBe(201);
  expect(second.body.id).toBe(first.body.id);
  const row = await db.query('SELECT created_at FROM idempotency_keys WHERE key = $1', [key]);
  expect(row.rowCount).toBe(1);
  expect(row.rows[0].created_at).toBeInstanceOf(Date);
  // The stored answer holds a live token: it is sealed at rest, never plain.
  const plain = await db.query(`SELECT count(*)::int AS n FROM idempotency_keys WHERE key = $1 AND response::text LIKE '%' || $2 || '%'`, [key, first.body.token]);
  expect(plain.rows[0].n).toBe(0);
});

test('POST …/runs twice with one key starts one run', async () => {
  const { first } = await twice(`/api/v1/repos/${acme.tenant}/${repo}/runs`, acme.token, { ref: 'main' });
  expect(first.status).toBe(202);
  const runs = await api('GET', `/api/v1/repos/${acme.tenant}/${repo}/runs`, { token: acme.token });
  expect(runs.body.runs.map((r: { id: string }) => r.id)).toEqual([first.body.id]);
});

test('POST …/deploys twice with one key queues one deploy; a stored 4xx is replayed too', async () => {
  const { first } = await twice(`/api/v1/repos/${acme.tenant}/${repo}/deploys`, acme.token, { ref: 'main', environment: 'staging' });
  expect(first.status).toBe(202);
  const deploys = await api('GET', `/api/v1/repos/${acme.tenant}/${repo}/deploys`, { token: acme.token });
  expect(deploys.body.deploys.map((d: { id: string }) => d.id)).toEqual([first.body.id]);
  const refused = await twice(`/api/v1/repos/${acme.tenant}/${repo}/deploys`, acme.token, { ref: 'no-such-branch', environment: 'staging' });
  expect(refused.first.status).toBe(404);
  await api('POST', `/api/v1/deploys/${encodeURIComponent(first.body.id)}/reject`, { token: acme.token, body: {} });
});

test('the same key with another body or another path is 422 and does nothing', async () => {
  const key = randomUUID();
  const name = uniqueName('t');
  const admin = platformInfo().adminToken;
  expect((await api('POST', '/api/v1/tenants', { token: admin, body: { name }, headers: keyed(key) })).status).toBe(201);
  const other = uniqueName('t');
  const changed = await api('POST', '/api/v1/tenants', { token: admin, body: { name: other }, headers: keyed(key) });
  expect(changed.status).toBe(422);
  expect(changed.body.error.code).toBe('unprocessable');
  expect(changed.body.error.message).toMatch(/Idempotency-Key .*different request/);
  const elsewhere = await api('POST', '/api/v1/repos', { token: admin, body: { name }, headers: keyed(key) });
  expect(elsewhere.status).toBe(422);
  expect((await db.query('SELECT count(*)::int AS n FROM tenants WHERE name = $1', [other])).rows[0].n).toBe(0);
});

test('a request with a key whose first request is still running is 409', async () => {
  const key = randomUUID();
  const body = { scopes: ['read'], expiresAt: new Date(Date.now() + 3_600_000).toISOString() };
  expect((await api('POST', '/api/v1/tokens', { token: acme.token, body, headers: keyed(key) })).status).toBe(201);
  // As if the first were still running: no answer stored yet.
  await db.query('UPDATE idempotency_keys SET status = NULL, response = NULL WHERE key = $1', [key]);
  const busy = await api('POST', '/api/v1/tokens', { token: acme.token, body, headers: keyed(key) });
  expect(busy.status).toBe(409);
  expect(busy.body.error.message).toMatch(/still being processed/);
  expect(busy.headers.get('retry-after')).toBeTruthy();
});

test('a key left unanswered by an api that died is taken over once the in-flight lease has passed', async () => {
  const key = randomUUID();
  const body = { scopes: ['read'], expiresAt: new Date(Date.now() + 3_600_000).toISOString() };
  const first = await api('POST', '/api/v1/tokens', { token: acme.token, body, headers: keyed(key) });
  expect(first.status).toBe(201);
  // As if the api had died mid-request two minutes ago: the claim is there, no answer.
  await db.query(`UPDATE idempotency_keys SET status = NULL, response = NULL, locked_at = now() - interval '2 minutes' WHERE key = $1`, [key]);
  const again = await api('POST', '/api/v1/tokens', { token: acme.token, body, headers: keyed(key) });
  expect(again.status).toBe(201);
  expect(again.headers.get('idempotent-replayed')).toBeNull();
  // From then on its answer is the one replayed.
  const replay = await api('POST', '/api/v1/tokens', { token: acme.token, body, headers: keyed(key) });
  expect(replay.headers.get('idempotent-replayed')).toBe('true');
  expect(replay.body.id).toBe(again.body.id);
});

test('keys belong to their caller: another caller with the same key and body gets an answer of its own', async () => {
  const stranger = await createTenantWithAdmin();
  const key = randomUUID();
  const body = { scopes: ['read'], expiresAt: new Date(Date.now() + 3_600_000).toISOString() };
  const mine = await api('POST', '/api/v1/tokens', { token: acme.token, body, headers: keyed(key) });
  const theirs = await api('POST', '/api/v1/tokens', { token: stranger.token, body, headers: keyed(key) });
  expect(mine.status).toBe(201);
  expect(theirs.status).toBe(201);
  expect(theirs.headers.get('idempotent-replayed')).toBeNull();
  expect(theirs.body.id).not.toBe(mine.body.id);
});
