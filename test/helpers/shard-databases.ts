import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createDb } from '../../core/db';
import { silentLog } from '../../infra/provision/log';
import { startEmbeddedPostgres, type PostgresHandle } from '../../infra/provision/postgres';
import { effectivePlacement, resolveShardMap, type ShardMapConfig } from '../../core/shard-map';
import { shardOf } from '../../core/shards';
import { readShardPlacements } from '../../core/stores/shard-placements-store';
import { findTenantByName } from '../../core/stores/tenants-store';
import { platformInfo } from '../harness/platform-info';

/**
 * Several physical databases for the shard map's tests (ADR 0025): `count` embedded Postgres
 * servers of the test's own (ephemeral: no fsync), each in a temporary folder, on free ports.
 */
export interface ShardServers {
  servers: PostgresHandle[];
  /** DATABASE_URL: the first server, the global database. */
  globalUrl: string;
  /** A map spreading the 8 shards round robin over every server (`global`, `db2`, `db3`, …). */
  map: ShardMapConfig;
  /** The database name of each server in `map` (`global` for the first). */
  names: string[];
  stop(): Promise<void>;
}

export async function startShardServers(count: number, o: { archiveCommand?: (name: string, pgDataDir: string) => string } = {}): Promise<ShardServers> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'dotgit-shards-'));
  const names = Array.from({ length: count }, (_, i) => (i === 0 ? 'global' : `db${i + 1}`));
  const servers = await Promise.all(
    names.map((name, i) => {
      const dataDir = path.join(root, `pg-${i + 1}`);
      return startEmbeddedPostgres({ dataDir, port: 0, log: silentLog, ephemeral: true, archiveCommand: o.archiveCommand?.(name, dataDir) });
    }),
  );
  const map: ShardMapConfig = {
    databases: Object.fromEntries(servers.slice(1).map((s, i) => [names[i + 1], s.databaseUrl])),
    shards: Array.from({ length: 8 }, (_, shard) => names[shard % count]),
  };
  return {
    servers,
    globalUrl: servers[0].databaseUrl,
    map,
    names,
    stop: async () => {
      await Promise.allSettled(servers.map((s) => s.stop()));
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/**
 * The other databases of a shard map whose global database is the platform's own (its embedded
 * Postgres, WAL archiving and all): `total - 1` embedded servers named `db2`, `db3` …, and a map
 * placing the 8 shards round robin over them (none on `global`, which keeps the global tables). For running existing suites against a
 * multi-database layout (test/harness/global-setup.ts, DOTGIT_TEST_SHARD_DATABASES).
 */
export async function startExtraShardDatabases(total: number): Promise<{ map: ShardMapConfig; stop(): Promise<void> }> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'dotgit-shards-'));
  const servers = await Promise.all(Array.from({ length: total - 1 }, (_, i) => startEmbeddedPostgres({ dataDir: path.join(root, `pg-${i + 2}`), port: 0, log: silentLog, ephemeral: true })));
  const names = ['global', ...servers.map((_, i) => `db${i + 2}`)];
  return {
    // Every shard off the global database: each tenant's rows are elsewhere than its users and tokens.
    map: { databases: Object.fromEntries(servers.map((s, i) => [names[i + 1], s.databaseUrl])), shards: Array.from({ length: 8 }, (_, shard) => names[1 + (shard % servers.length)]) },
    stop: async () => {
      await Promise.allSettled(servers.map((s) => s.stop()));
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/**
 * The URL of the database holding a tenant's rows on the test platform, so a suite that reads or
 * alters tenant-owned rows directly (sealed secrets, the audit chain) runs on either layout: the
 * platform's own database, or under DOTGIT_TEST_SHARD_DATABASES the shard map's database of the
 * tenant's shard (its live placement, as the platform's router reads it).
 */
export async function tenantDatabaseUrl(tenant: string): Promise<string> {
  const info = platformInfo();
  const global = createDb(info.databaseUrl, 1);
  try {
    const t = await findTenantByName(global, tenant);
    if (!t) throw new Error(`no tenant ${tenant}`);
    const map = resolveShardMap(info.shardMap, info.databaseUrl);
    const name = effectivePlacement(map, await readShardPlacements(global))[shardOf(t.id)];
    return map.databases.find((d) => d.name === name)!.url;
  } finally {
    await global.end();
  }
}
