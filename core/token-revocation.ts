import { UnavailableError } from './errors';
import type { Redis } from './redis';

/**
 * Revocation tombstones in Redis. The gateway caches token lookups in memory; what keeps a revoked
 * token from working out of that cache is this key, which the revoking service writes before the
 * revocation commits and which the gateway's rate-limit script checks in the same round trip as
 * the limit (docs/decisions/0006-gateway-token-cache.md).
 */
export function revokedTokenKey(tokenId: number): string {
  return `dotgit:revoked-token:${tokenId}`;
}

/**
 * How long a tombstone lives. It only has to outlive every cached entry of the token (the cache
 * TTL is at most an hour: `DOTGIT_TOKEN_CACHE_TTL` in core/config.ts); after that the gateway asks Postgres,
 * where `revoked_at` is permanent.
 */
export const REVOCATION_TOMBSTONE_SECONDS = 24 * 3600;

/** How long a revocation waits for Redis before it gives up (503, nothing revoked). */
const TOMBSTONE_TIMEOUT_MS = 2000;

/**
 * Writes the tombstones of a revoked token and of every token derived from it, in one round trip;
 * a 503 when Redis does not take all of them (the revocation must then not commit).
 */
export async function markTokensRevoked(redis: Redis, tokenIds: readonly number[]): Promise<void> {
  if (tokenIds.length === 0) return;
  const m = redis.multi();
  for (const id of tokenIds) m.set(revokedTokenKey(id), '1', 'EX', REVOCATION_TOMBSTONE_SECONDS);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), TOMBSTONE_TIMEOUT_MS);
  });
  const answers = await Promise.race([m.exec().catch(() => null), timeout]).finally(() => clearTimeout(timer));
  if (!answers || answers.length !== tokenIds.length || answers.some(([err, v]) => err || v !== 'OK')) {
    throw new UnavailableError('the revocation could not be recorded (Redis did not answer); nothing was revoked, retry shortly', 1);
  }
}
