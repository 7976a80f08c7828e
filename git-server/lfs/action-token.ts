import { createHmac } from 'node:crypto';
import { SignJWT, jwtVerify } from 'jose';
import type { LfsOperation } from './batch';

/**
 * Short-lived tokens that authorise one transfer of one object, handed to the client in the batch
 * answer's action `header` (as GitHub and GitLab do). The client then needs no credentials of its
 * own for the href: this works the same whether git-lfs got its credentials from the URL, a
 * credential helper or nowhere (public repository), and a token cannot be replayed for another
 * object, repository or direction.
 */
export const ACTION_TOKEN_HEADER = 'x-dotgit-lfs-token';
const AUDIENCE = 'dotgit-lfs-action';
const ISSUER = 'dotgit-git-server';
const TYP = 'dotgit-lfs+jwt';

export interface ActionClaims {
  op: LfsOperation;
  tenantId: number;
  repoId: number;
  oid: string;
  size: number;
}

/** Thrown when an action token is missing, forged, expired or for something else. */
export class InvalidActionTokenError extends Error {
  override readonly name = 'InvalidActionTokenError';
}

// A key of its own, derived from the internal secret: an action token can never verify as a
// gateway identity or a service token, even though all three come from the same secret.
function key(secret: string): Uint8Array {
  return createHmac('sha256', secret).update('dotgit lfs action token v1').digest();
}

export async function signActionToken(secret: string, claims: ActionClaims, ttlSeconds: number): Promise<string> {
  return new SignJWT({ ...claims })
    .setProtectedHeader({ alg: 'HS256', typ: TYP })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(`${ttlSeconds}s`)
    .sign(key(secret));
}

/** The token's claims when it is valid and grants `op` on exactly this repository and oid. */
export async function verifyActionToken(secret: string, token: string, want: Omit<ActionClaims, 'size'>): Promise<ActionClaims> {
  let claims: ActionClaims;
  try {
    const { payload } = await jwtVerify(token, key(secret), { issuer: ISSUER, audience: AUDIENCE, algorithms: ['HS256'], typ: TYP, clockTolerance: 5 });
    claims = payload as unknown as ActionClaims;
  } catch (err) {
    throw new InvalidActionTokenError(`invalid LFS action token: ${(err as Error).message}`);
  }
  if (claims.op !== want.op || claims.tenantId !== want.tenantId || claims.repoId !== want.repoId || claims.oid !== want.oid) {
    throw new InvalidActionTokenError('the LFS action token is for another object or operation');
  }
  if (!Number.isSafeInteger(claims.size) || claims.size < 0) throw new InvalidActionTokenError('the LFS action token has no valid size');
  return claims;
}
