import { createHash, randomBytes } from 'node:crypto';

export const SCOPES = ['read', 'write', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/** A new API token: a recognisable prefix and 32 random bytes. Only its hash is ever stored. */
export function generateToken(): string {
  return `dg_${randomBytes(32).toString('base64url')}`;
}

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}
