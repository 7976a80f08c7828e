/**
 * The part of one database a platform-wide read asks for (ADR 0025): the logical shards the live
 * placement puts on it, `null` for all of its rows (the database holds all 8 shards). During a
 * shard move's grace period (ADR 0026) the source still holds the moved shard's rows until the
 * clean-up; asking each database only for its placed shards reads every tenant in one database.
 */
export type ShardScope = number[] | null;

/**
 * SQL: the row is in the scope, `param` an int[] parameter (NULL: every row). `shardExpr` is the
 * row's shard: `dotgit_shard_of(alias.tenant_id)` for tenant-owned tables (migration 0026),
 * `a.shard` for the audit log (its generated column, shard 0 for entries without a tenant).
 */
export function inShardScope(param: string, shardExpr: string): string {
  return `(${param}::int[] IS NULL OR ${shardExpr} = ANY(${param}::int[]))`;
}
