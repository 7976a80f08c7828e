import type { Config } from './config';
import { createDb, type Db } from './db';
import { assertPrimary } from './db-leader';
import { effectivePlacement, GLOBAL_DATABASE, resolveShardMap, type ResolvedShardMap } from './shard-map';
import { SHARD_COUNT, shardOf } from './shards';
import { pingDatabase } from './stores/server-store';
import { readShardPlacements } from './stores/shard-placements-store';

/**
 * Which database a query goes to (issue 12 item 2, ADR 0025). Tenant-owned tables live in their
 * tenant's logical shard (`shardOf`, core/shards.ts); the shard map places the 8 shards on 1..8
 * databases; global tables live in the global database (`DATABASE_URL`).
 */
export interface ShardRouter {
  /** Pool of the database holding this tenant's shard now. */
  forTenant(tenantId: number): Db;
  forShard(shard: number): Db;
  /** The database for global (not per-tenant) tables: tenant directory, platform admins, signing keys, storage nodes ... */
  readonly global: Db;
  /** Each distinct database once, with its name and the shards placed on it now. */
  databases(): Array<{ name: string; url: string; db: Db; shards: number[] }>;
  /** Re-reads shard placements (after a shard move switched one). */
  refresh(): Promise<void>;
  close(): Promise<void>;
}

export interface ShardRouterOptions {
  /** Connections per database pool. Default 10. */
  max?: number;
  /** Check at once that every database answers (start-up). Default true. */
  checkReachable?: boolean;
}

/**
 * The router of a process, from `DATABASE_URL` and `DOTGIT_SHARD_MAP`. Start-up stops with a message
 * naming the problem when the map does not place all 8 shards or names a database it does not
 * define (config validation), when a live placement names a database the map lacks, or when a
 * database cannot be reached.
 */
export async function createShardRouter(config: Pick<Config, 'databaseUrl' | 'shardMap'>, opts: ShardRouterOptions = {}): Promise<ShardRouter> {
  if (!config.databaseUrl) throw new Error('DATABASE_URL is not set (the global database; npm start sets it)');
  return openShardRouter(resolveShardMap(config.shardMap, config.databaseUrl), opts);
}

/** A router over a resolved map (tests build maps of their own). */
export async function openShardRouter(map: ResolvedShardMap, opts: ShardRouterOptions = {}): Promise<ShardRouter> {
  const pools = new Map(map.databases.map((d) => [d.name, { ...d, db: createDb(d.url, opts.max ?? 10) }]));
  const global = pools.get(GLOBAL_DATABASE)!.db;
  const closeAll = () => Promise.allSettled([...pools.values()].map((p) => p.db.end())).then(() => undefined);
  try {
    if (opts.checkReachable ?? true) {
      await Promise.all(
        [...pools.values()].map((p) =>
          pingDatabase(p.db)
            .catch((err: unknown) => {
              throw new Error(`shard map: database "${p.name}" (${redactUrl(p.url)}) cannot be reached: ${(err as Error).message}`);
            })
            // Writes go there: a standby's address in the map stops start-up (ADR 0027).
            .then(() => assertPrimary(p.db, p.name === GLOBAL_DATABASE ? `DATABASE_URL (${redactUrl(p.url)})` : `shard map: database "${p.name}" (${redactUrl(p.url)})`)),
        ),
      );
    }
    let placement = effectivePlacement(map, await readShardPlacements(global));
    const poolOfShard = (shard: number): Db => {
      if (!Number.isInteger(shard) || shard < 0 || shard >= SHARD_COUNT) throw new Error(`not a logical shard: ${shard} (0..${SHARD_COUNT - 1})`);
      return pools.get(placement[shard])!.db;
    };
    return {
      global,
      forShard: poolOfShard,
      forTenant: (tenantId) => poolOfShard(shardOf(tenantId)),
      databases: () =>
        [...pools.values()]
          .map((p) => ({ name: p.name, url: p.url, db: p.db, shards: placement.flatMap((name, shard) => (name === p.name ? [shard] : [])) }))
          // Databases that hold no shard now (the global one with every shard moved off, a move's
          // empty target) still count: global tables, migrations and a move's leftovers live there.
          .sort((a, b) => (a.name === GLOBAL_DATABASE ? -1 : b.name === GLOBAL_DATABASE ? 1 : a.name.localeCompare(b.name))),
      refresh: async () => {
        placement = effectivePlacement(map, await readShardPlacements(global));
      },
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/** A database URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  return url.replace(/(\/\/[^:/@]+:)[^@]*@/, '$1***@');
}
