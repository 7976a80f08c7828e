import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, exportSPKI, generateKeyPair, importJWK, decodeProtectedHeader, type JWK } from 'jose';
import { createDb, type Db } from '../../core/db';
import { SecretBox } from '../../core/secret-box';
import { JwtVerifier } from '../../gateway/jwt/jwt-verifier';
import { SigningKeys } from '../../gateway/jwt/signing-keys';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, type TenantFixture } from '../helpers/api-client';

// Our OAuth2 client-credentials issuer and JWT validation at the gateway, and the attacks the
// gateway must refuse.

let t: TenantFixture;
let db: Db;
const gw = () => platformInfo().gatewayUrl;
const ISS = () => platformInfo().gatewayUrl;

async function tokenFor(clientId: string, secret: string, scope?: string) {
  const body = new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: secret, ...(scope ? { scope } : {}) });
  const res = await fetch(`${gw()}/oauth/token`, { method: 'POST', body });
  return { status: res.status, body: (await res.json()) as any };
}

/** Signs with the gateway's real current key (read from Postgres), to make tokens with chosen claims. */
async function signWithOurKey(claims: Record<string, unknown>, header: Record<string, unknown> = {}, opts: { exp?: string | number; nbf?: string | number; iss?: string; aud?: string } = {}) {
  const row = (await db.query('SELECT kid, private_enc FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1')).rows[0];
  const jwk = JSON.parse(new SecretBox(platformInfo().internalSecret, 'jwt-signing-keys').open(row.private_enc)) as JWK;
  const key = await importJWK(jwk, 'ES256');
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: row.kid, typ: 'at+jwt', ...header }).setIssuer(opts.iss ?? ISS()).setAudience(opts.aud ?? 'dotgit').setSubject(t.username).setIssuedAt();
  jwt.setExpirationTime(opts.exp ?? '5m');
  if (opts.nbf !== undefined) jwt.setNotBefore(opts.nbf);
  return jwt.sign(key);
}

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const me = (bearer: string) => api('GET', `/api/v1/repos/${t.tenant}/none`, { token: bearer });

beforeAll(async () => {
  t = await createTenantWithAdmin();
  db = createDb(platformInfo().databaseUrl, 2);
});
afterAll(() => db.end());

test('client credentials give a short-lived ES256 JWT that authenticates, with at most the client\'s scopes', async () => {
  const ok = await tokenFor(t.username, t.token, 'read');
  expect(ok.status).toBe(200);
  expect(ok.body).toEqual(expect.objectContaining({ token_type: 'Bearer', expires_in: 600, scope: 'read' }));
  const header = decodeProtectedHeader(ok.body.access_token);
  expect(header).toEqual(expect.objectContaining({ alg: 'ES256', typ: 'at+jwt' }));
  const jwks = await (await fetch(`${gw()}/.well-known/jwks.json`)).json();
  expect(jwks.keys.map((k: JWK) => k.kid)).toContain(header.kid);
  expect(jwks.keys.every((k: JWK) => k.d === undefined)).toBe(true); // no private parts published
  expect((await me(ok.body.access_token)).status).toBe(404); // authenticated: 404, not 401
  // A read-scoped JWT cannot write.
  expect((await api('POST', '/api/v1/repos', { token: ok.body.access_token, body: { owner: t.tenant, name: 'x' } })).status).toBe(403);
  expect((await tokenFor(t.username, 'dg_wrong')).status).toBe(401);
  expect((await tokenFor('someone-else', t.token)).status).toBe(401);
  const read = await api<{ token: string }>('POST', '/api/v1/tokens', { token: t.token, body: { scopes: ['read'] } });
  expect((await tokenFor(t.username, read.body.token, 'write')).body.error).toBe('invalid_scope');
  const grant = await fetch(`${gw()}/oauth/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'password' }) });
  expect(grant.status).toBe(400);
  expect((await grant.json()).error).toBe('unsupported_grant_type');
});

test('attacks: alg none, HS256 with the public key, kid traversal and unknown kids, wrong claims, expiry', async () => {
  const valid = await signWithOurKey({ scope: 'read' });
  expect((await me(valid)).status).toBe(404);
  const [h, p] = valid.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url').toString());
  const none = `${b64({ alg: 'none', typ: 'at+jwt' })}.${p}.`;
  expect((await me(none)).status).toBe(401);
  // HS256 "signed" with the published public key as the HMAC secret.
  const pub = (await (await fetch(`${gw()}/.well-known/jwks.json`)).json()).keys.find((k: JWK) => k.kid === header.kid);
  const confused = await new SignJWT({ scope: 'admin', sub: t.username }).setProtectedHeader({ alg: 'HS256', kid: header.kid, typ: 'at+jwt' }).setIssuer(ISS()).setAudience('dotgit').setIssuedAt().setExpirationTime('5m').sign(new TextEncoder().encode(JSON.stringify(pub)));
  expect((await me(confused)).status).toBe(401);
  for (const kid of ['../../../etc/passwd', 'unknown-kid-123']) expect((await me(await signWithOurKey({ scope: 'read' }, { kid }))).status).toBe(401);
  expect((await me(await signWithOurKey({ scope: 'read' }, {}, { exp: Math.floor(Date.now() / 1000) - 60 }))).status).toBe(401);
  expect((await me(await signWithOurKey({ scope: 'read' }, {}, { nbf: Math.floor(Date.now() / 1000) + 300 }))).status).toBe(401);
  expect((await me(await signWithOurKey({ scope: 'read' }, {}, { aud: 'someone-else' }))).status).toBe(401);
  expect((await me(await signWithOurKey({ scope: 'read' }, {}, { iss: 'https://evil.example' }))).status).toBe(401);
  expect((await me(await signWithOurKey({ scope: 'read' }, { typ: 'JWT' }))).status).toBe(401);
  // Tampered payload.
  const tampered = `${h}.${b64({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), scope: 'admin' })}.${valid.split('.')[2]}`;
  expect((await me(tampered)).status).toBe(401);
  const res = await me(none);
  expect((res.body as any).error.message).toBe('invalid or expired JWT');
});

test('revoking the API token a JWT was exchanged for ends the JWT at once', async () => {
  const made = await api<{ id: number; token: string }>('POST', '/api/v1/tokens', { token: t.token, body: { scopes: ['read'] } });
  const jwt = (await tokenFor(t.username, made.body.token)).body.access_token;
  expect((await me(jwt)).status).toBe(404);
  expect((await api('DELETE', `/api/v1/tokens/${made.body.id}`, { token: t.token })).status).toBe(204);
  expect((await me(jwt)).status).toBe(401);
});

test('a flood of unknown kids reloads the key ring a bounded number of times', async () => {
  const keys = new SigningKeys(db, platformInfo().internalSecret, undefined, 60_000);
  const verifier = new JwtVerifier({ keys, issuer: ISS(), audience: 'dotgit', external: [] });
  await keys.jwks();
  const before = keys.reloads;
  for (let i = 0; i < 50; i++) {
    await expect(verifier.verify(await signWithOurKey({ scope: 'read' }, { kid: `made-up-${i}` }))).rejects.toThrow('invalid or expired JWT');
  }
  expect(keys.reloads - before).toBeLessThanOrEqual(1);
});

test('key rotation: a new kid signs, the old one stays published and its tokens still verify', async () => {
  const keys = new SigningKeys(db, platformInfo().internalSecret, { rotateAfterMs: 0, overlapMs: 3600_000 }, 0);
  const verifier = new JwtVerifier({ keys, issuer: ISS(), audience: 'dotgit', external: [] });
  const old = await signWithOurKey({ scope: 'read' });
  const oldKid = decodeProtectedHeader(old).kid;
  await keys.rotateIfDue();
  const { kid } = await keys.signingKey();
  expect(kid).not.toBe(oldKid);
  expect((await keys.jwks()).keys.map((k) => k.kid)).toEqual(expect.arrayContaining([oldKid, kid]));
  await expect(verifier.verify(old)).resolves.toEqual(expect.objectContaining({ username: t.username }));
  // The running gateway picks the new key up too.
  expect((await me(old)).status).toBe(404);
});

test('external issuers: JWTs of a configured JWKS verify with pinned algorithms; JWKS refetches stay bounded', async () => {
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'ext-1', alg: 'RS256' };
  let fetches = 0;
  const server = http.createServer((_req, res) => {
    fetches++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
    const keys = new SigningKeys(db, platformInfo().internalSecret);
    const verifier = new JwtVerifier({ keys, issuer: ISS(), audience: 'dotgit', external: [{ issuer: 'https://sso.example', jwksUrl: url, audience: 'dotgit-ext', algorithms: ['RS256'] }] });
    const sign = (kid: string, aud = 'dotgit-ext') =>
      new SignJWT({ preferred_username: t.username, scope: 'read write' }).setProtectedHeader({ alg: 'RS256', kid }).setIssuer('https://sso.example').setAudience(aud).setIssuedAt().setExpirationTime('5m').sign(privateKey);
    await expect(verifier.verify(await sign('ext-1'))).resolves.toEqual({ username: t.username, scopes: ['read', 'write'], issuer: 'https://sso.example', expiresAt: expect.any(Number) });
    await expect(verifier.verify(await sign('ext-1', 'other'))).rejects.toThrow();
    // Key confusion: HS256 "signed" with the issuer's RSA public key (PEM, and the JWK as published).
    for (const secret of [await exportSPKI(publicKey), JSON.stringify(jwk)]) {
      const confused = await new SignJWT({ preferred_username: t.username, scope: 'read write admin' }).setProtectedHeader({ alg: 'HS256', kid: 'ext-1' }).setIssuer('https://sso.example').setAudience('dotgit-ext').setIssuedAt().setExpirationTime('5m').sign(new TextEncoder().encode(secret));
      await expect(verifier.verify(confused)).rejects.toThrow();
    }
    for (let i = 0; i < 30; i++) await expect(verifier.verify(await sign(`unknown-${i}`))).rejects.toThrow();
    expect(fetches).toBeLessThanOrEqual(2); // the first fetch, at most one refetch within the cooldown
  } finally {
    server.close();
  }
});
