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

/** What a token may derive from: the credential that asks (docs/decisions/0009-token-derivation.md). */
export interface DerivationParent {
  scopes: readonly Scope[];
  /** When the asking credential ends (ms since the epoch), or null when it never does. */
  expiresAt: number | null;
}

const RANK: Record<Scope, number> = { read: 1, write: 2, admin: 3 };
const ceiling = (scopes: readonly Scope[]) => Math.max(0, ...scopes.map((s) => RANK[s]));

/**
 * The token-derivation rule, as pure logic: a credential may create a token only when it can write
 * (a read-only token mints nothing), only with scopes within its own (admin ⊃ write ⊃ read), and
 * never outliving itself: a child's expiry is at most the parent's and defaults to it. Answers the
 * child's expiry; throws `DerivationError` naming the broken part.
 */
export function derivedExpiry(parent: DerivationParent, wanted: readonly Scope[], asked: Date | null): Date | null {
  if (ceiling(parent.scopes) < RANK.write) {
    throw new DerivationError('scope', 'a read-only token cannot create tokens (creating a token is a write); use a token with the write scope');
  }
  if (ceiling(wanted) > ceiling(parent.scopes)) throw new DerivationError('scope', 'a token cannot be given more scopes than the token that creates it');
  if (parent.expiresAt === null) return asked;
  if (asked === null) return new Date(parent.expiresAt);
  if (asked.getTime() > parent.expiresAt) {
    throw new DerivationError('expiry', `expiresAt must not be later than ${new Date(parent.expiresAt).toISOString()}, when the token that creates it expires`);
  }
  return asked;
}

/** A broken derivation rule: `scope` (not allowed, 403) or `expiry` (bad input, 400). */
export class DerivationError extends Error {
  override readonly name = 'DerivationError';
  constructor(
    readonly rule: 'scope' | 'expiry',
    message: string,
  ) {
    super(message);
  }
}
