import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, uniqueName, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git } from '../helpers/git';

// The REST surface of CONTRACT through the gateway: shapes, permissions (deny by default), and
// bad input answered with a clear 4xx in the CONTRACT error body.

let acme: TenantFixture;
let other: TenantFixture;

beforeAll(async () => {
  [acme, other] = await Promise.all([createTenantWithAdmin(), createTenantWithAdmin()]);
});

function expectError(res: { status: number; body: any; headers: Headers }, status: number, code?: string) {
  expect(res.status).toBe(status);
  expect(res.body.error).toEqual(expect.objectContaining({ message: expect.any(String), requestId: res.headers.get('x-request-id') }));
  if (code) expect(res.body.error.code).toBe(code);
}

test('errors carry code, message and the request id; an incoming well-formed request id is kept', async () => {
  const res = await api('GET', '/api/v1/runs/nope', { token: acme.token, headers: { 'x-request-id': 'test-req-0001' } });
  expectError(res, 404, 'not_found');
  expect(res.body.error.requestId).toBe('test-req-0001');
});

test('without a token the API answers 401; with an unknown token 401', async () => {
  expectError(await api('POST', '/api/v1/tenants', { body: { name: 'x' } }), 401, 'unauthenticated');
  expectError(await api('POST', '/api/v1/tenants', { token: 'dg_not-a-real-token', body: { name: 'x' } }), 401, 'unauthenticated');
});

test('only a platform admin creates tenants', async () => {
  expectError(await api('POST', '/api/v1/tenants', { token: acme.token, body: { name: uniqueName('t') } }), 403, 'forbidden');
  const dup = await api('POST', '/api/v1/tenants', { token: platformInfo().adminToken, body: { name: acme.tenant } });
  expectError(dup, 409, 'conflict');
});

test('bad input: malformed JSON, bad names, bad roles and scopes are 400 and create nothing', async () => {
  const raw = await fetch(`${platformInfo().gatewayUrl}/api/v1/repos`, {
    method: 'POST',
    headers: { authorization: `Bearer ${acme.token}`, 'content-type': 'application/json' },
    body: '{"owner": ',
  });
  expect(raw.status).toBe(400);
  for (const name of ['..', '-rf', '.git', 'a/b', 'x'.repeat(101), 'wеb', 'web.git']) {
    const res = await api('POST', '/api/v1/repos', { token: acme.token, body: { owner: acme.tenant, name, visibility: 'private' } });
    expectError(res, 400, 'invalid_input');
  }
  expectError(await api('POST', '/api/v1/repos', { token: acme.token, body: { owner: acme.tenant, name: 'ok', visibility: 'secret' } }), 400);
  expectError(await api('POST', `/api/v1/tenants/${acme.tenant}/users`, { token: acme.token, body: { username: uniqueName('u'), role: 'god' } }), 400);
  expectError(await api('POST', '/api/v1/tokens', { token: acme.token, body: { scopes: ['root'] } }), 400);
  expectError(await api('POST', '/api/v1/tokens', { token: acme.token, body: { scopes: ['read'], expiresAt: 'yesterday' } }), 400);
  expect((await api('GET', `/api/v1/repos/${acme.tenant}/ok`, { token: acme.token })).status).toBe(404);
});

test('tenants are isolated: another tenant sees private repos and runs as not found, and cannot create in them', async () => {
  const name = uniqueName('r');
  expect((await api('POST', '/api/v1/repos', { token: acme.token, body: { owner: acme.tenant, name, visibility: 'private' } })).status).toBe(201);
  expectError(await api('GET', `/api/v1/repos/${acme.tenant}/${name}`, { token: other.token }), 404);
  expectError(await api('GET', `/api/v1/repos/${acme.tenant}/${name}/runs`, { token: other.token }), 404);
  expectError(await api('GET', `/api/v1/repos/${acme.tenant}/${name}`), 404);
  expectError(await api('POST', '/api/v1/repos', { token: other.token, body: { owner: acme.tenant, name: uniqueName('r') } }), 404);
  // Not 403: that would tell an outsider the tenant exists (issue 10; see api-validation.test.ts).
  expectError(await api('POST', `/api/v1/tenants/${acme.tenant}/users`, { token: other.token, body: { username: uniqueName('u'), role: 'admin' } }), 404);
  // git agrees: the other tenant's token cannot clone.
  const clone = await git(['ls-remote', cloneUrl(acme.tenant, name, other.token)]);
  expect(clone.code).not.toBe(0);
});

test('a repository name its tenant already uses is 409 naming it; an unknown tenant is 404; the first one is untouched', async () => {
  const name = uniqueName('dup');
  const first = await api('POST', '/api/v1/repos', { token: acme.token, body: { owner: acme.tenant, name, visibility: 'private' } });
  expect(first.status).toBe(201);
  const again = await api('POST', '/api/v1/repos', { token: acme.token, body: { owner: acme.tenant, name, visibility: 'public' } });
  expectError(again, 409, 'conflict');
  expect(again.body.error.message).toBe(`repository ${acme.tenant}/${name} already exists`);
  expectError(await api('POST', '/api/v1/repos', { token: acme.token, body: { owner: uniqueName('nobody'), name } }), 404);
  const kept = await api('GET', `/api/v1/repos/${acme.tenant}/${name}`, { token: acme.token });
  expect(kept.body).toEqual(expect.objectContaining({ createdAt: first.body.createdAt, visibility: 'private' }));
});

test('public repositories are readable anonymously, never writable', async () => {
  const name = uniqueName('pub');
  expect((await api('POST', '/api/v1/repos', { token: acme.token, body: { owner: acme.tenant, name, visibility: 'public' } })).status).toBe(201);
  expect((await api('GET', `/api/v1/repos/${acme.tenant}/${name}`)).status).toBe(200);
  expect((await git(['ls-remote', cloneUrl(acme.tenant, name)])).code).toBe(0);
  const push = await fetch(`${cloneUrl(acme.tenant, name)}/info/refs?service=git-receive-pack`);
  expect(push.status).toBe(401);
  const otherPush = await fetch(`${cloneUrl(acme.tenant, name)}/info/refs?service=git-receive-pack`, {
    headers: { authorization: `Bearer ${other.token}` },
  });
  expect(otherPush.status).toBe(403);
});

test('a read token cannot mint a write token, nor create repositories', async () => {
  const read = await api<{ token: string }>('POST', '/api/v1/tokens', { token: acme.token, body: { scopes: ['read'] } });
  expect(read.status).toBe(201);
  expectError(await api('POST', '/api/v1/tokens', { token: read.body.token, body: { scopes: ['write'] } }), 403);
  expectError(await api('POST', '/api/v1/repos', { token: read.body.token, body: { owner: acme.tenant, name: uniqueName('r') } }), 403);
});

test('a revoked token stops working at once; expiry is honoured', async () => {
  const t = await api<{ id: number; token: string }>('POST', '/api/v1/tokens', { token: acme.token, body: { scopes: ['read'] } });
  expect((await api('GET', `/api/v1/repos/${acme.tenant}/none-such`, { token: t.body.token })).status).toBe(404);
  expect((await api('DELETE', `/api/v1/tokens/${t.body.id}`, { token: acme.token })).status).toBe(204);
  expectError(await api('GET', `/api/v1/repos/${acme.tenant}/none-such`, { token: t.body.token }), 401);
  // Another tenant cannot revoke (or learn about) acme's tokens.
  const t2 = await api<{ id: number }>('POST', '/api/v1/tokens', { token: acme.token, body: { scopes: ['read'] } });
  expectError(await api('DELETE', `/api/v1/tokens/${t2.body.id}`, { token: other.token }), 404);
  // Long enough that its first use falls before it on a loaded machine.
  const soon = Date.now() + 8_000;
  const short = await api<{ token: string }>('POST', '/api/v1/tokens', { token: acme.token, body: { scopes: ['read'], expiresAt: new Date(soon).toISOString() } });
  expect((await api('GET', `/api/v1/repos/${acme.tenant}/none-such`, { token: short.body.token })).status).toBe(404);
  await new Promise((r) => setTimeout(r, soon + 500 - Date.now()));
  expectError(await api('GET', `/api/v1/repos/${acme.tenant}/none-such`, { token: short.body.token }), 401);
});

test('internal endpoints are not reachable through the gateway; forged identity headers are ignored', async () => {
  const res = await fetch(`${platformInfo().gatewayUrl}/internal/repos`, { method: 'POST' });
  expect(res.status).toBe(404);
  const forged = await api('POST', '/api/v1/tenants', { headers: { 'x-dotgit-identity': 'forged' }, body: { name: 'x' } });
  expect(forged.status).toBe(401);
  // Upstreams themselves refuse requests that did not come through the gateway.
  const direct = await fetch(`http://127.0.0.1:${platformInfo().apiPort}/api/v1/repos/${acme.tenant}/x`);
  expect(direct.status).toBe(401);
});

test('healthz answers 200 when every part is up', async () => {
  const res = await fetch(`${platformInfo().gatewayUrl}/healthz`);
  expect(res.status).toBe(200);
  expect(await res.json()).toEqual({ status: 'ok' });
});

test('a tenant admin in the platform tenant cannot mint or revoke tokens of the platform admin', async () => {
  const admin = platformInfo().adminToken;
  const ops = uniqueName('ops');
  expect((await api('POST', '/api/v1/tenants/dotgit/users', { token: admin, body: { username: ops, role: 'admin' } })).status).toBe(201);
  const opsToken = await api<{ token: string }>('POST', '/api/v1/tokens', { token: admin, body: { username: ops, scopes: ['read', 'write', 'admin'] } });
  expect(opsToken.status).toBe(201);
  const mint = await api('POST', '/api/v1/tokens', { token: opsToken.body.token, body: { username: 'admin', scopes: ['admin'] } });
  expect([403, 404]).toContain(mint.status);
  // The platform admin's own token (id of the bootstrap token is unknown here: make one to aim at).
  const target = await api<{ id: number }>('POST', '/api/v1/tokens', { token: admin, body: { scopes: ['read'] } });
  expect((await api('DELETE', `/api/v1/tokens/${target.body.id}`, { token: opsToken.body.token })).status).toBe(404);
});

test('a read token may revoke itself but no other token', async () => {
  const write = await api<{ id: number }>('POST', '/api/v1/tokens', { token: acme.token, body: { scopes: ['read', 'write'] } });
  const read = await api<{ id: number; token: string }>('POST', '/api/v1/tokens', { token: acme.token, body: { scopes: ['read'] } });
  expect((await api('DELETE', `/api/v1/tokens/${write.body.id}`, { token: read.body.token })).status).toBe(403);
  expect((await api('DELETE', `/api/v1/tokens/${read.body.id}`, { token: read.body.token })).status).toBe(204);
  expect((await api('GET', `/api/v1/repos/${acme.tenant}/x`, { token: read.body.token })).status).toBe(401);
});

test('per-repository grants: an outside collaborator reads or writes one repository only', async () => {
  const name = uniqueName('collab');
  await api('POST', '/api/v1/repos', { token: acme.token, body: { owner: acme.tenant, name, visibility: 'private' } });
  const other2 = uniqueName('r');
  await api('POST', '/api/v1/repos', { token: acme.token, body: { owner: acme.tenant, name: other2, visibility: 'private' } });
  // `other`'s admin gets read on one repository of acme.
  const grant = await api('PUT', `/api/v1/repos/${acme.tenant}/${name}/collaborators/${other.username}`, { token: acme.token, body: { access: 'read' } });
  expect(grant.status).toBe(200);
  expect(grant.body).toEqual({ username: other.username, access: 'read' });
  expect((await api('GET', `/api/v1/repos/${acme.tenant}/${name}`, { token: other.token })).status).toBe(200);
  expect((await api('GET', `/api/v1/repos/${acme.tenant}/${other2}`, { token: other.token })).status).toBe(404);
  expect((await git(['ls-remote', cloneUrl(acme.tenant, name, other.token)])).code).toBe(0);
  const push = await fetch(`${cloneUrl(acme.tenant, name)}/info/refs?service=git-receive-pack`, { headers: { authorization: `Bearer ${other.token}` } });
  expect(push.status).toBe(403);
  // Raised to write: now it may push.
  await api('PUT', `/api/v1/repos/${acme.tenant}/${name}/collaborators/${other.username}`, { token: acme.token, body: { access: 'write' } });
  const push2 = await fetch(`${cloneUrl(acme.tenant, name)}/info/refs?service=git-receive-pack`, { headers: { authorization: `Bearer ${other.token}` } });
  expect(push2.status).toBe(200);
  // The collaborator cannot manage grants; bad access values are 400; removal takes effect.
  expect((await api('PUT', `/api/v1/repos/${acme.tenant}/${name}/collaborators/${acme.username}`, { token: other.token, body: { access: 'read' } })).status).toBe(403);
  expect((await api('PUT', `/api/v1/repos/${acme.tenant}/${name}/collaborators/${other.username}`, { token: acme.token, body: { access: 'owner' } })).status).toBe(400);
  expect((await api('GET', `/api/v1/repos/${acme.tenant}/${name}/collaborators`, { token: acme.token })).body.collaborators).toEqual([{ username: other.username, access: 'write' }]);
  expect((await api('DELETE', `/api/v1/repos/${acme.tenant}/${name}/collaborators/${other.username}`, { token: acme.token })).status).toBe(204);
  expect((await api('GET', `/api/v1/repos/${acme.tenant}/${name}`, { token: other.token })).status).toBe(404);
});
