import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { silentLog } from '../../infra/provision/log';
import { startEmbeddedPostgres, type PostgresHandle } from '../../infra/provision/postgres';
import type { ShardMapConfig } from '../../core/shard-map';

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

export async function startShardServers(count: number): Promise<ShardServers> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'dotgit-shards-'));
  const servers = await Promise.all(Array.from({ length: count }, (_, i) => startEmbeddedPostgres({ dataDir: path.join(root, `pg-${i + 1}`), port: 0, log: silentLog, ephemeral: true })));
  const names = servers.map((_, i) => (i === 0 ? 'global' : `db${i + 1}`));
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
