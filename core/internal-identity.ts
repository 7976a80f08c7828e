import { createSecretKey, type KeyObject } from 'node:crypto';
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

/** Signs the principal (or an anonymous caller) for one request, bound to its request id. */
export async function signIdentity(secret: string, principal: Principal | null, requestId: string): Promise<string> {
  return new SignJWT({ principal, rid: requestId })
    .setProtectedHeader({ alg: 'HS256', typ: 'dotgit-identity+jwt' })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(`${TTL_SECONDS}s`)
    .sign(key(secret));
}

/** Thrown when the internal identity header is missing, forged, expired or malformed. */
export class InvalidIdentityError extends Error {
  override readonly name = 'InvalidIdentityError';
}

export interface VerifiedIdentity {
  principal: Principal | null;
  requestId: string;
}

export async function verifyIdentity(secret: string, token: string | undefined): Promise<VerifiedIdentity> {
  if (!token) throw new InvalidIdentityError('missing internal identity');
  try {
    const { payload } = await jwtVerify(token, key(secret), {
      issuer: ISSUER,
      audience: AUDIENCE,
      algorithms: ['HS256'],
      typ: 'dotgit-identity+jwt',
      clockTolerance: 5,
    });
    return { principal: (payload.principal as Principal | null) ?? null, requestId: String(payload.rid ?? '') };
  } catch (err) {
    throw new InvalidIdentityError(`invalid internal identity: ${(err as Error).message}`);
  }
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
