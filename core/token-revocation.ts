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

/** Writes the tombstone; a 503 when Redis does not take it (the revocation must then not commit). */
export async function markTokenRevoked(redis: Redis, tokenId: number): Promise<void> {
  const ok = await redis.set(revokedTokenKey(tokenId), '1', 'EX', REVOCATION_TOMBSTONE_SECONDS).catch(() => null);
  if (ok !== 'OK') throw new UnavailableError('the revocation could not be recorded (Redis did not answer); nothing was revoked, retry shortly', 1);
}
