import { SignJWT, decodeJwt, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { createDb } from '../../../core/db';
import { SecretBox } from '../../../core/secret-box';
import { platformInfo } from '../../harness/platform-info';
import type { Ctx, HttpCase } from './types';

// Hostile JWTs as bearer credentials: alg none, wrong keys, algorithm confusion, expiry, nbf,
// audience, issuer, kid, malformed segments, sizes. Every one is a 401 that names the JWT
// (the gateway gives one answer for every reason, so a caller learns nothing about keys or claims).

/** The key of the one JWT in `makeJwts` that is valid (the control, not a case). */
export const CONTROL = '(control) valid';

const b64 = (o: unknown) => Buffer.from(typeof o === 'string' ? o : JSON.stringify(o)).toString('base64url');

/** Makes the JWTs of the cases: some signed with the gateway's real key (read from Postgres) to vary one claim at a time. */
export async function makeJwts(c: Ctx): Promise<Record<string, string>> {
  const gw = platformInfo().gatewayUrl;
  const res = await fetch(`${gw}/oauth/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'client_credentials', client_id: c.t.username, client_secret: c.t.token }) });
  const good = ((await res.json()) as { access_token: string }).access_token;
  const claims = decodeJwt(good);
  const [goodHeader] = good.split('.');
  const kid = JSON.parse(Buffer.from(goodHeader, 'base64url').toString()).kid as string;
  const db = createDb(platformInfo().databaseUrl, 1);
  let key: CryptoKey | Uint8Array;
  let publicJwk: JWK;
  try {
    const row = (await db.query('SELECT private_enc FROM signing_keys WHERE kid = $1', [kid])).rows[0];
    const jwk = JSON.parse(new SecretBox(platformInfo().internalSecret, 'jwt-signing-keys').open(row.private_enc)) as JWK;
    key = await importJWK(jwk, 'ES256');
    publicJwk = { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y };
  } finally {
    await db.end();
  }
  const base = { scope: 'read write admin', tok: claims.tok };
  const sign = (o: { claims?: Record<string, unknown>; header?: Record<string, unknown>; exp?: string | number; nbf?: string | number; iss?: string; aud?: string; sub?: string; signWith?: CryptoKey | Uint8Array; alg?: string; noExp?: boolean }) => {
    const j = new SignJWT({ ...base, ...o.claims })
      .setProtectedHeader({ alg: o.alg ?? 'ES256', kid, typ: 'at+jwt', ...o.header })
      .setIssuer(o.iss ?? String(claims.iss))
      .setAudience(o.aud ?? String(claims.aud))
      .setSubject(o.sub ?? c.t.username)
      .setIssuedAt();
    if (!o.noExp) j.setExpirationTime(o.exp ?? '5m');
    if (o.nbf !== undefined) j.setNotBefore(o.nbf);
    // jose signs an unknown `crit` extension only when told it is understood (the verifier is not told).
    return j.sign(o.signWith ?? key, o.header?.crit ? { crit: { 'exp-ext': true } } : undefined);
  };
  const attacker = await generateKeyPair('ES256', { extractable: true });
  const attackerJwk = await exportJWK(attacker.publicKey);
  const now = Math.floor(Date.now() / 1000);
  const [h, p, s] = good.split('.');
  const unsigned = (header: unknown, payload: unknown = claims) => `${b64(header)}.${b64(payload)}.`;
  return {
    // Signed like the others with nothing changed: it must authenticate, or the variations prove nothing.
    [CONTROL]: await sign({}),
    'alg none': unsigned({ alg: 'none', typ: 'at+jwt' }),
    'alg none with our kid': unsigned({ alg: 'none', kid, typ: 'at+jwt' }),
    'alg "NONE"': unsigned({ alg: 'NONE', kid, typ: 'at+jwt' }),
    'HS256 with a random secret': await sign({ alg: 'HS256', signWith: new TextEncoder().encode('a random secret of at least 32 bytes!!') }),
    'HS256 keyed with our public key (alg confusion)': await sign({ alg: 'HS256', signWith: new TextEncoder().encode(JSON.stringify(publicJwk)) }),
    'ES256 with another key, our kid': await sign({ signWith: attacker.privateKey }),
    'ES256 with another key embedded as jwk': await sign({ signWith: attacker.privateKey, header: { jwk: attackerJwk } }),
    'ES256 with another key named by jku': await sign({ signWith: attacker.privateKey, header: { jku: 'http://127.0.0.1:9/jwks.json' } }),
    expired: await sign({ exp: now - 3600, claims: { iat: now - 7200 } }),
    'nbf an hour ahead': await sign({ nbf: now + 3600 }),
    'without exp': await sign({ noExp: true }),
    'wrong audience': await sign({ aud: 'someone-else' }),
    'wrong issuer': await sign({ iss: 'https://evil.example' }),
    'issuer with a trailing slash': await sign({ iss: `${String(claims.iss)}/` }),
    'typ JWT instead of at+jwt': await sign({ header: { typ: 'JWT' } }),
    'unknown kid': await sign({ header: { kid: 'no-such-kid' } }),
    'kid with a path': await sign({ header: { kid: '../../../../etc/passwd' } }),
    'crit header with an unknown extension': await sign({ header: { crit: ['exp-ext'], 'exp-ext': true } }),
    'subject of an unknown user': await sign({ sub: 'no-such-user-anywhere' }),
    'tok of a token that is not the subject\'s': await sign({ claims: { tok: 1 } }),
    'signature stripped': `${h}.${p}.`,
    'signature of another token': `${h}.${b64({ ...claims, scope: 'admin' })}.${s}`,
    'payload changed, signature kept': `${h}.${b64({ ...claims, sub: 'admin' })}.${s}`,
    'header not base64url': `eyJ!!!.${p}.${s}`,
    'header truncated base64': `eyJhbGciOi.${p}.${s}`,
    'payload not JSON': `${h}.${b64('not json at all')}.${s}`,
    'payload a JSON array': `${h}.${b64([1, 2, 3])}.${s}`,
    'four segments': `${h}.${p}.${s}.${s}`,
    'huge (12 kB) signature': `${h}.${p}.${'A'.repeat(12_000)}`,
    'huge (12 kB) payload, unsigned': unsigned({ alg: 'ES256', kid, typ: 'at+jwt' }, { ...claims, pad: 'x'.repeat(9000) }),
  };
}

export function jwtCases(c: Ctx): HttpCase[] {
  const repoUrl = `/api/v1/repos/${c.t.tenant}/${c.repo}`;
  const cases: HttpCase[] = Object.entries(c.jwts).filter(([name]) => name !== CONTROL).map(([name, jwt]) => ({
    kind: 'jwt',
    name,
    req: { method: 'GET', path: repoUrl, headers: [['Authorization', `Bearer ${jwt}`]] },
    // Characters outside base64url make the Authorization header malformed; a fourth segment makes
    // the value no JWT at all, so it is looked up (and not found) as an API token.
    expect: { shape: 'api', status: 401, message: /JWT|malformed Authorization header|invalid, expired or revoked token/, code: /unauthenticated/ },
  }));
  // The same over git (HTTP Basic password) and for a write.
  cases.push({
    kind: 'jwt',
    name: 'alg none as the git password',
    req: { method: 'GET', path: `/${c.t.tenant}/${c.repo}.git/info/refs?service=git-upload-pack`, headers: [['Authorization', `Basic ${Buffer.from(`x:${c.jwts['alg none']}`).toString('base64')}`]] },
    expect: { shape: 'api', status: 401, message: /JWT/ },
  });
  cases.push({
    kind: 'jwt',
    name: 'ES256 with another key, creating a repository',
    req: { method: 'POST', path: '/api/v1/repos', headers: [['Authorization', `Bearer ${c.jwts['ES256 with another key, our kid']}`]], body: { owner: c.t.tenant, name: 'jwt-never-created' } },
    expect: { shape: 'api', status: 401, message: /JWT/ },
  });
  return cases;
}
