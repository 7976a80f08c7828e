import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { SignJWT, jwtVerify } from 'jose';
import type { Principal } from './principal';

/** Header the gateway sets on every forwarded request; upstreams trust no other source of identity. */
export const IDENTITY_HEADER = 'x-dotgit-identity';
const ISSUER = 'dotgit-gateway';
const AUDIENCE = 'dotgit-internal';
/** Short-lived: it only has to cover one hop (long git pushes verify it when the request starts). */
const TTL_SECONDS = 60;

const keys = new Map<string, KeyObject>();
/** The HMAC key object, made once per secret (importing it on every request was a measurable cost at the gateway). */
function key(secret: string): KeyObject {
  let k = keys.get(secret);
  if (!k) {
    k = createSecretKey(Buffer.from(secret, 'utf8'));
    keys.set(secret, k);
  }
  return k;
}

const IDENTITY_TYP = 'dotgit-identity+jwt';
/** The one protected header identities carry (alg and typ pinned), encoded once. */
const IDENTITY_HEADER_B64 = Buffer.from(JSON.stringify({ alg: 'HS256', typ: IDENTITY_TYP })).toString('base64url');
const CLOCK_TOLERANCE_SECONDS = 5;

/**
 * Signs the principal (or an anonymous caller) for one request, bound to its request id: a compact
 * HS256 JWT. Made with node:crypto's HMAC directly because it sits on every request's path at both
 * ends of the hop; jose's WebCrypto HMAC cost ~50 µs per sign and per verify in the gateway and
 * api profiles. The format is plain RFC 7519 (jose verifies these and vice versa; unit-tested).
 */
export async function signIdentity(secret: string, principal: Principal | null, requestId: string): Promise<string> {
  const iat = Math.floor(Date.now() / 1000);
  const payload = Buffer.from(JSON.stringify({ principal, rid: requestId, iss: ISSUER, aud: AUDIENCE, iat, exp: iat + TTL_SECONDS })).toString('base64url');
  const input = `${IDENTITY_HEADER_B64}.${payload}`;
  return `${input}.${createHmac('sha256', key(secret)).update(input).digest('base64url')}`;
}

/** Thrown when the internal identity header is missing, forged, expired or malformed. */
export class InvalidIdentityError extends Error {
  override readonly name = 'InvalidIdentityError';
}

export interface VerifiedIdentity {
  principal: Principal | null;
  requestId: string;
}

const B64URL = /^[A-Za-z0-9_-]+$/;

/** Verifies an identity as jose would with alg HS256 and typ, iss, aud, exp (and nbf if present) checked. */
export async function verifyIdentity(secret: string, token: string | undefined): Promise<VerifiedIdentity> {
  if (!token) throw new InvalidIdentityError('missing internal identity');
  const fail = (why: string): never => {
    throw new InvalidIdentityError(`invalid internal identity: ${why}`);
  };
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((p) => B64URL.test(p))) fail('malformed');
  const [h, p, sig] = parts as [string, string, string];
  let header: Record<string, unknown>;
  let claims: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as Record<string, unknown>;
    claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    return fail('malformed');
  }
  if (header === null || typeof header !== 'object' || header.alg !== 'HS256' || header.typ !== IDENTITY_TYP || 'crit' in header) fail('unexpected header');
  const expected = createHmac('sha256', key(secret)).update(`${h}.${p}`).digest();
  const given = Buffer.from(sig, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) fail('signature verification failed');
  if (claims === null || typeof claims !== 'object') return fail('malformed claims');
  const now = Math.floor(Date.now() / 1000);
  if (claims.iss !== ISSUER) fail('unexpected "iss" claim value');
  if (!(claims.aud === AUDIENCE || (Array.isArray(claims.aud) && claims.aud.includes(AUDIENCE)))) fail('unexpected "aud" claim value');
  if (typeof claims.exp !== 'number' || claims.exp <= now - CLOCK_TOLERANCE_SECONDS) fail('"exp" claim timestamp check failed');
  if (claims.nbf !== undefined && (typeof claims.nbf !== 'number' || claims.nbf > now + CLOCK_TOLERANCE_SECONDS)) fail('"nbf" claim timestamp check failed');
  return { principal: (claims.principal as Principal | null) ?? null, requestId: String(claims.rid ?? '') };
}

const SERVICE_AUDIENCE = 'dotgit-service';

/**
 * Service-to-service calls (api → git-server, hook → git-server) carry a token of a different
 * audience than user identities, so a user request forwarded by the gateway can never pass as one.
 */
export async function signServiceToken(secret: string, service: string, claims: Record<string, unknown> = {}, ttlSeconds = 60): Promise<string> {
  return new SignJWT({ ...claims, svc: service })
    .setProtectedHeader({ alg: 'HS256', typ: 'dotgit-service+jwt' })
    .setIssuer(service)
    .setAudience(SERVICE_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(`${ttlSeconds}s`)
    .sign(key(secret));
}

export async function verifyServiceToken(secret: string, token: string | undefined): Promise<Record<string, unknown>> {
  if (!token) throw new InvalidIdentityError('missing service token');
  try {
    const { payload } = await jwtVerify(token, key(secret), { audience: SERVICE_AUDIENCE, algorithms: ['HS256'], typ: 'dotgit-service+jwt', clockTolerance: 5 });
    return payload as Record<string, unknown>;
  } catch (err) {
    throw new InvalidIdentityError(`invalid service token: ${(err as Error).message}`);
  }
}

export const SERVICE_HEADER = 'x-dotgit-service';
