import { loadConfig } from '../../core/config';
import { effectivePlacement, resolveShardMap } from '../../core/shard-map';
import { shardOf } from '../../core/shards';

/** DOTGIT_SHARD_MAP validation (ADR 0025): start-up stops with a message that names the problem. */

const env = (map: unknown) => ({ DATABASE_URL: 'postgres://u:p@127.0.0.1:1/g', DOTGIT_SHARD_MAP: typeof map === 'string' ? map : JSON.stringify(map) });
const refusal = (map: unknown) => {
  try {
    loadConfig(env(map));
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('the map was accepted');
};
const DBS = { databases: { db2: 'postgres://u:p@127.0.0.1:2/d', db3: 'postgres://u:p@127.0.0.1:3/d' } };
const SPREAD = ['global', 'db2', 'db3', 'global', 'db2', 'db3', 'global', 'db2'];

test('unset: all 8 shards on DATABASE_URL, which is the global database', () => {
  const config = loadConfig({ DATABASE_URL: 'postgres://u:p@127.0.0.1:1/g' });
  expect(config.shardMap).toBeUndefined();
  expect(resolveShardMap(config.shardMap, 'postgres://u:p@127.0.0.1:1/g')).toEqual({ databases: [{ name: 'global', url: 'postgres://u:p@127.0.0.1:1/g' }], shards: Array(8).fill('global') });
});

test('a map over three databases resolves with global first', () => {
  const config = loadConfig(env({ ...DBS, shards: SPREAD }));
  const map = resolveShardMap(config.shardMap, config.databaseUrl!);
  expect(map.databases.map((d) => d.name)).toEqual(['global', 'db2', 'db3']);
  expect(map.shards).toEqual(SPREAD);
});

test('a map that does not cover all 8 shards is refused, naming the shards without a database', () => {
  expect(refusal({ ...DBS, shards: SPREAD.slice(0, 5) })).toMatch(/must place all 8 logical shards.*it lists 5: shards 5, 6, 7 have no database/);
  expect(refusal({ ...DBS, shards: [...SPREAD, 'db2'] })).toMatch(/must place all 8 logical shards.*it lists 9/);
  expect(refusal({ ...DBS })).toMatch(/shards/);
});

test('a shard on a database the map does not define is refused, naming shard and database', () => {
  expect(refusal({ ...DBS, shards: ['global', 'db2', 'db9', 'global', 'db2', 'db3', 'global', 'db2'] })).toMatch(
    /shard 2 is placed on database "db9", which the shard map does not define \(defined: global, db2, db3\)/,
  );
});

test('other malformed maps are refused with their reason', () => {
  expect(refusal('{"shards": [')).toMatch(/DOTGIT_SHARD_MAP is not valid JSON/);
  expect(refusal({ databases: { global: 'postgres://x/y' }, shards: Array(8).fill('global') })).toMatch(/"global" is DATABASE_URL and cannot be redefined/);
  expect(refusal({ databases: { db2: 'mysql://x/y' }, shards: Array(8).fill('db2') })).toMatch(/starts with postgres:\/\//);
  expect(refusal({ databases: { db2: 'postgres://a/b', db3: 'postgres://a/b' }, shards: SPREAD })).toMatch(/"db2" and "db3" have the same URL/);
  expect(refusal({ databases: { DB2: 'postgres://a/b' }, shards: Array(8).fill('global') })).toMatch(/database name/);
  expect(() => resolveShardMap({ databases: { db2: 'postgres://u:p@127.0.0.1:1/g' }, shards: Array(8).fill('db2') }, 'postgres://u:p@127.0.0.1:1/g')).toThrow(/has DATABASE_URL's URL/);
});

test('a live placement (shard_placements) wins over the map; one on an undefined database stops start-up', () => {
  const map = resolveShardMap({ ...DBS, shards: SPREAD }, 'postgres://u:p@127.0.0.1:1/g');
  expect(effectivePlacement(map, new Map([[1, 'db3']]))).toEqual(['global', 'db3', 'db3', 'global', 'db2', 'db3', 'global', 'db2']);
  expect(() => effectivePlacement(map, new Map([[4, 'db7']]))).toThrow(/shard 4 is placed on database "db7" \(shard_placements, written by a shard move\), which DOTGIT_SHARD_MAP does not define/);
});

test('the hash: the first 4 bytes of SHA-256 of the decimal id, big-endian, mod 8 (pinned values)', () => {
  expect([1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((id) => shardOf(id))).toEqual([3, 2, 5, 7, 5, 1, 3, 2, 7, 5]);
});
