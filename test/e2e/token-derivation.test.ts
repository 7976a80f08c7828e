import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, type TenantFixture } from '../helpers/api-client';

// Issue 10, defect 1: a token derives only tokens that carry no more than itself, outlive it never,
// and die with it (docs/decisions/0009-token-derivation.md).

let t: TenantFixture;
const gw = () => platformInfo().gatewayUrl;
const me = (token: string) => api('GET', `/api/v1/repos/${t.tenant}/none`, { token });
const inSeconds = (s: number) => new Date(Date.now() + s * 1000).toISOString();

async function mint(parent: string, body: Record<string, unknown>) {
  return api<{ id: number; token: string; expiresAt: string | null; error?: { message: string } }>('POST', '/api/v1/tokens', { token: parent, body });
}

async function jwtFor(clientId: string, secret: string, scope: string) {
  const res = await fetch(`${gw()}/oauth/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: secret, scope }) });
  const body = (await res.json()) as { access_token: string; expires_in: number };
  return body;
}

beforeAll(async () => {
  t = await createTenantWithAdmin();
});

test('a read-only token, or a scope=read JWT, mints no token at all', async () => {
  const read = await mint(t.token, { scopes: ['read'], expiresAt: inSeconds(90) });
  expect(read.status).toBe(201);
  for (const body of [{ scopes: ['read'] }, { scopes: ['read'], expiresAt: inSeconds(30) }]) {
    const child = await mint(read.body.token, body);
    expect(child.status).toBe(403);
    expect((child.body as any).error.message).toMatch(/read-only token cannot create tokens/);
  }
  const jwt = await jwtFor(t.username, t.token, 'read');
  const fromJwt = await mint(jwt.access_token, { scopes: ['read'] });
  expect(fromJwt.status).toBe(403);
});

test('a child never outlives its parent: its expiry defaults to the parent\'s, a later one is refused', async () => {
  const parent = await mint(t.token, { scopes: ['read', 'write'], expiresAt: inSeconds(90) });
  expect(parent.status).toBe(201);
  const child = await mint(parent.body.token, { scopes: ['read'] });
  expect(child.status).toBe(201);
  expect(child.body.expiresAt).not.toBeNull();
  expect(new Date(child.body.expiresAt!).getTime()).toBe(new Date(parent.body.expiresAt!).getTime());
  const later = await mint(parent.body.token, { scopes: ['read'], expiresAt: inSeconds(3600) });
  expect(later.status).toBe(400);
  expect((later.body as any).error.message).toMatch(/expiresAt must not be later than .*the token that creates it/);
  const never = await mint(parent.body.token, { scopes: ['read'], expiresAt: null });
  expect(never.status).toBe(201);
  expect(never.body.expiresAt).toBe(parent.body.expiresAt);
  const sooner = await mint(parent.body.token, { scopes: ['write'], expiresAt: inSeconds(30) });
  expect(sooner.status).toBe(201);
  expect(new Date(sooner.body.expiresAt!).getTime()).toBeLessThan(new Date(parent.body.expiresAt!).getTime());
  // More scopes than the parent: refused, as before.
  expect((await mint(parent.body.token, { scopes: ['admin'] })).status).toBe(403);
});

test('revoking a token ends its children and grandchildren at once, cached at the gateway or not', async () => {
  const parent = await mint(t.token, { scopes: ['read', 'write'] });
  const child = await mint(parent.body.token, { scopes: ['read', 'write'] });
  const grandchild = await mint(child.body.token, { scopes: ['read', 'write'] });
  expect([parent.status, child.status, grandchild.status]).toEqual([201, 201, 201]);
  // Used once, so the gateway holds each in its token cache.
  for (const tok of [parent, child, grandchild]) expect((await me(tok.body.token)).status).toBe(404);
  expect((await api('DELETE', `/api/v1/tokens/${parent.body.id}`, { token: t.token })).status).toBe(204);
  for (const tok of [parent, child, grandchild]) {
    const res = await me(tok.body.token);
    expect(res.status).toBe(401);
  }
  // A revoked token's descendants are gone for good: they cannot be revoked again (404) ...
  expect((await api('DELETE', `/api/v1/tokens/${grandchild.body.id}`, { token: t.token })).status).toBe(404);
  // ... and a sibling branch of the same root is untouched.
  const other = await mint(t.token, { scopes: ['read'] });
  expect((await me(other.body.token)).status).toBe(404);
});

test('a token minted with a JWT is bounded by the JWT\'s expiry and dies with the API token behind it', async () => {
  const base = await mint(t.token, { scopes: ['read', 'write'] });
  const jwt = await jwtFor(t.username, base.body.token, 'read write');
  const exp = Date.now() + jwt.expires_in * 1000;
  const child = await mint(jwt.access_token, { scopes: ['read'] });
  expect(child.status).toBe(201);
  expect(child.body.expiresAt).not.toBeNull();
  expect(Math.abs(new Date(child.body.expiresAt!).getTime() - exp)).toBeLessThan(10_000);
  expect((await mint(jwt.access_token, { scopes: ['read'], expiresAt: inSeconds(jwt.expires_in + 3600) })).status).toBe(400);
  expect((await me(child.body.token)).status).toBe(404);
  expect((await api('DELETE', `/api/v1/tokens/${base.body.id}`, { token: t.token })).status).toBe(204);
  expect((await me(child.body.token)).status).toBe(401);
});

test('/oauth/token never issues a JWT that outlives the API token it is exchanged for', async () => {
  const short = await mint(t.token, { scopes: ['read', 'write'], expiresAt: inSeconds(90) });
  const jwt = await jwtFor(t.username, short.body.token, 'read write');
  expect(jwt.expires_in).toBeGreaterThan(0);
  expect(jwt.expires_in).toBeLessThanOrEqual(90);
  const exp = JSON.parse(Buffer.from(jwt.access_token.split('.')[1], 'base64url').toString()).exp * 1000;
  expect(exp).toBeLessThanOrEqual(new Date(short.body.expiresAt!).getTime() + 1000);
  // And what it mints is bounded the same way.
  const child = await mint(jwt.access_token, { scopes: ['read'] });
  expect(new Date(child.body.expiresAt!).getTime()).toBeLessThanOrEqual(new Date(short.body.expiresAt!).getTime());
});
