import { z } from 'zod';
import { SHARD_COUNT } from './shards';

/**
 * The shard map (`DOTGIT_SHARD_MAP`, ADR 0025): which Postgres database holds each of the 8
 * logical shards (core/shards.ts). JSON:
 *
 *   {"databases": {"db2": "postgres://…/dotgit", "db3": "postgres://…"},
 *    "shards": ["global", "db2", "db3", "global", "db2", "db3", "global", "db2"]}
 *
 * `shards[i]` names the database of shard i. The name `global` is always defined: it is
 * `DATABASE_URL`, the global database (tenant directory, users and tokens, signing keys, storage
 * nodes, backups, the live placements), which may hold shards too. Unset: all 8 shards on it.
 * This is the initial placement: once `shard_placements` has a row for a shard, that row wins.
 */
export const GLOBAL_DATABASE = 'global';

const DATABASE_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;

export const shardMapSchema = z
  .strictObject({
    databases: z.record(z.string(), z.string().regex(/^postgres(ql)?:\/\//, 'a database URL starts with postgres:// or postgresql://')).default({}),
    shards: z.array(z.string()),
  })
  .superRefine((map, ctx) => {
    for (const name of Object.keys(map.databases)) {
      if (!DATABASE_NAME.test(name)) ctx.addIssue({ code: 'custom', path: ['databases', name], message: `"${name}" is not a database name: 1-32 of a-z 0-9 _ - (not starting with _ or -)` });
    }
    if (GLOBAL_DATABASE in map.databases) {
      ctx.addIssue({ code: 'custom', path: ['databases', GLOBAL_DATABASE], message: `"${GLOBAL_DATABASE}" is DATABASE_URL and cannot be redefined in the shard map` });
    }
    if (map.shards.length !== SHARD_COUNT) {
      const missing = Array.from({ length: Math.max(0, SHARD_COUNT - map.shards.length) }, (_, i) => map.shards.length + i);
      ctx.addIssue({
        code: 'custom',
        path: ['shards'],
        message:
          `the shard map must place all ${SHARD_COUNT} logical shards (shards[0..${SHARD_COUNT - 1}]), it lists ${map.shards.length}` +
          (missing.length ? `: shard${missing.length > 1 ? 's' : ''} ${missing.join(', ')} ha${missing.length > 1 ? 've' : 's'} no database` : ''),
      });
    }
    const defined = [GLOBAL_DATABASE, ...Object.keys(map.databases)];
    map.shards.forEach((name, shard) => {
      if (!defined.includes(name)) {
        ctx.addIssue({ code: 'custom', path: ['shards', shard], message: `shard ${shard} is placed on database "${name}", which the shard map does not define (defined: ${defined.join(', ')})` });
      }
    });
    const byUrl = new Map<string, string>();
    for (const [name, url] of Object.entries(map.databases)) {
      const other = byUrl.get(url);
      if (other) ctx.addIssue({ code: 'custom', path: ['databases', name], message: `databases "${other}" and "${name}" have the same URL; name each database once` });
      byUrl.set(url, name);
    }
  });

export type ShardMapConfig = z.infer<typeof shardMapSchema>;

/** The shard map resolved against DATABASE_URL: every database by name, and the 8 shards' databases. */
export interface ResolvedShardMap {
  /** Each database once, `global` first. */
  databases: Array<{ name: string; url: string }>;
  /** `shards[i]` = the name of the database holding shard i. */
  shards: string[];
}

/** The map from config, or the default (all 8 shards on DATABASE_URL). */
export function resolveShardMap(map: ShardMapConfig | undefined, databaseUrl: string): ResolvedShardMap {
  if (!map) return { databases: [{ name: GLOBAL_DATABASE, url: databaseUrl }], shards: Array.from({ length: SHARD_COUNT }, () => GLOBAL_DATABASE) };
  const databases = [{ name: GLOBAL_DATABASE, url: databaseUrl }, ...Object.entries(map.databases).map(([name, url]) => ({ name, url }))];
  const clash = databases.find((d) => d.name !== GLOBAL_DATABASE && d.url === databaseUrl);
  if (clash) throw new Error(`DOTGIT_SHARD_MAP: database "${clash.name}" has DATABASE_URL's URL; name the global database "${GLOBAL_DATABASE}" in shards instead`);
  return { databases, shards: [...map.shards] };
}

/**
 * The placement in force: the live one (`shard_placements`) where a shard has a row, else the
 * map's. A live placement on a database the map does not define stops start-up: this process could
 * not reach that shard.
 */
export function effectivePlacement(map: ResolvedShardMap, live: ReadonlyMap<number, string>): string[] {
  const names = new Set(map.databases.map((d) => d.name));
  return map.shards.map((fromConfig, shard) => {
    const placed = live.get(shard) ?? fromConfig;
    if (!names.has(placed)) {
      throw new Error(
        `shard ${shard} is placed on database "${placed}" (shard_placements, written by a shard move), which DOTGIT_SHARD_MAP does not define ` +
          `(defined: ${[...names].join(', ')}); add it to the map of every process`,
      );
    }
    return placed;
  });
}
