import { createHash } from 'node:crypto';

/**
 * Logical shards of tenant-owned metadata (DESIGN §4, issue 12): every tenant belongs to one of
 * SHARD_COUNT shards, fixed forever by its id, so the shard map can move whole shards between
 * databases without ever re-hashing a tenant.
 */
export const SHARD_COUNT = 8;

/**
 * The logical shard of a tenant: the first 4 bytes of SHA-256 over the tenant id's decimal digits
 * (UTF-8, no sign for positive ids, no leading zeros), read as a big-endian uint32, mod 8.
 *
 * SHA-256 rather than Postgres' `hashtext` or a JavaScript string hash: it is specified outside
 * both, identical in every language and in SQL (`get_byte(sha256(decode(tenant_id::text,
 * 'escape')), 3) % 8`, which is the same number because 2^8 is a multiple of 8; migration 0019
 * computes the audit log's shard that way), and spreads sequential ids evenly.
 */
export function shardOf(tenantId: number | bigint | string): number {
  const digits = typeof tenantId === 'string' ? tenantId : String(tenantId);
  if (!/^-?(0|[1-9][0-9]*)$/.test(digits)) throw new Error(`not a tenant id: ${digits}`);
  return createHash('sha256').update(digits, 'utf8').digest().readUInt32BE(0) % SHARD_COUNT;
}
