import { inTransaction, type Db } from './db';
import type { Logger } from './logger';
import { migrate, MIGRATIONS_DIR, type MigrateOptions } from './migrate';
import { registerSchemaClient, type SchemaClientOptions, type SchemaClientRegistration } from './schema-clients';
import type { ShardRouter } from './shard-router';
import { GLOBAL_DATABASE, type ResolvedShardMap } from './shard-map';
import { SHARD_COUNT } from './shards';
import { syncTenantCopies } from './tenant-directory';
import { ensureIdBlock, raiseIdentitySequences, seedShardPlacements } from './stores/shard-placements-store';
import type { ShardScope } from './stores/shard-scope';

/**
 * Work done once per database of the shard map (ADR 0025): migrations, schema-client registration,
 * and the fan-out of platform-wide reads.
 */

/** Ids of database block k start at k * 2^40 (below 2^53, so they stay exact JavaScript numbers). */
export const ID_BLOCK_SIZE = 2 ** 40;

/**
 * Migrates every database of the map: the global one first (it holds `shard_databases` and
 * `shard_placements`), then the others in parallel; then raises each database's identity sequences
 * into its block, writes the map's placement for shards that have none yet, and brings the
 * reference copies of `tenants` up to date. A contract refused
 * on one database (ContractRefusedError) stops the run; what was applied stays applied.
 * Answers the files applied, per database.
 */
export async function migrateAllDatabases(router: ShardRouter, map: ResolvedShardMap, dir = MIGRATIONS_DIR, opts: MigrateOptions = {}): Promise<Record<string, string[]>> {
  const dbs = router.databases();
  const applied: Record<string, string[]> = {};
  applied[GLOBAL_DATABASE] = await migrate(router.global, dir, opts);
  await Promise.all(dbs.filter((d) => d.name !== GLOBAL_DATABASE).map(async (d) => (applied[d.name] = await migrate(d.db, dir, opts))));
  for (const d of dbs) {
    const block = await inTransaction(router.global, (c) => ensureIdBlock(c, d.name, d.name === GLOBAL_DATABASE));
    await raiseIdentitySequences(d.db, block * ID_BLOCK_SIZE);
  }
  await seedShardPlacements(router.global, map.shards);
  await router.refresh();
  await syncTenantCopies(router);
  return applied;
}

/** Registers this process in `schema_clients` of every database (a contract runs per database). */
export async function registerSchemaClientEverywhere(router: ShardRouter, kind: string, opts: SchemaClientOptions = {}): Promise<SchemaClientRegistration> {
  const regs = await Promise.all(router.databases().map((d) => registerSchemaClient(d.db, kind, opts)));
  return { instance: regs[0].instance, needsVersion: regs[0].needsVersion, stop: () => Promise.all(regs.map((r) => r.stop())).then(() => undefined) };
}

/** A database holding shards now, with the scope a platform-wide read asks it for. */
export interface LiveDatabase {
  name: string;
  db: Db;
  /** The shards the router's placement puts on it now. */
  shards: number[];
  /** `shards`, or `null` when it holds all 8 (no filter needed). */
  scope: ShardScope;
}

/**
 * The databases holding shards in the router's placement now, global first, each with its scope.
 * A database holding none (a move's source after the switch, until its clean-up) is left out:
 * whatever tenant rows it still has are an old copy.
 */
export function liveDatabases(router: ShardRouter): LiveDatabase[] {
  return router
    .databases()
    .filter((d) => d.shards.length > 0)
    .map((d) => ({ name: d.name, db: d.db, shards: d.shards, scope: d.shards.length === SHARD_COUNT ? null : d.shards }));
}

/**
 * A platform-wide read: `fn` on every database holding shards, in parallel, results in the
 * router's database order (global first). `fn` must read only its database's `scope` (the stores'
 * `shards` option): during a shard move's grace period (ADR 0026) the moved shard's rows are in
 * the source and the target, and only the database the placement names answers for them, so a row
 * is never listed or counted twice. The placement is the process's own (refreshed on a move's
 * announcement); a stale one reads the old copy, still once.
 */
export async function fanOut<T>(router: ShardRouter, fn: (db: Db, database: LiveDatabase) => Promise<T>): Promise<T[]> {
  return Promise.all(liveDatabases(router).map((d) => fn(d.db, d)));
}

/** Log line helper: what each database got from a migration run. */
export function describeApplied(applied: Record<string, string[]>, log: Pick<Logger, 'info'>): void {
  for (const [name, files] of Object.entries(applied)) if (files.length) log.info(`migrations applied on ${name}: ${files.join(', ')}`);
}
