import { platformInfo } from '../harness/platform-info';
import { runDotgit } from '../helpers/cli';
import { api, createTenantWithAdmin } from '../helpers/api-client';

// The shard move's admin endpoint and CLI command on the shared platform (one database, "global",
// holding all 8 shards): who may start a move and the refusals of bad input. A move that runs:
// test/integration/shard-move.test.ts (two databases).

const cli = runDotgit;

const admin = () => platformInfo().adminToken;

test('POST /api/v1/admin/shards/{shard}/move: platform admins only (401 without a token, 403 for a tenant admin)', async () => {
  expect((await api('POST', '/api/v1/admin/shards/3/move', { body: { toDatabase: 'global' } })).status).toBe(401);
  const t = await createTenantWithAdmin();
  const refused = await api('POST', '/api/v1/admin/shards/3/move', { token: t.token, body: { toDatabase: 'global' } });
  expect(refused.status).toBe(403);
  expect(refused.body.error.code).toBe('forbidden');
});

test('bad input gets a 4xx naming the problem: not a shard, no or an unknown database, the database it is on', async () => {
  const notShard = await api('POST', '/api/v1/admin/shards/9/move', { token: admin(), body: { toDatabase: 'global' } });
  expect([notShard.status, notShard.body.error.message]).toEqual([400, expect.stringContaining('shard must be a logical shard number, 0 to 7')]);
  const noDb = await api('POST', '/api/v1/admin/shards/3/move', { token: admin(), body: {} });
  expect([noDb.status, noDb.body.error.message]).toEqual([400, expect.stringContaining('toDatabase must name a database of the shard map')]);
  const unknown = await api('POST', '/api/v1/admin/shards/3/move', { token: admin(), body: { toDatabase: 'nowhere' } });
  expect([unknown.status, unknown.body.error.message]).toEqual([400, 'database "nowhere" is not in the shard map (DOTGIT_SHARD_MAP defines "global")']);
  const same = await api('POST', '/api/v1/admin/shards/3/move', { token: admin(), body: { toDatabase: 'global' } });
  expect([same.status, same.body.error.message]).toEqual([409, 'shard 3 is already on database "global"']);
});

test('dotgit shard move: usage errors exit 2, refusals say why (exit 1 for a conflict, 4 for a tenant admin)', async () => {
  const usage = await cli(['shard', 'move', '9', 'db2'], admin());
  expect([usage.code, usage.stderr]).toEqual([2, expect.stringContaining("<shard> must be a logical shard number, 0 to 7, got '9'")]);
  const conflict = await cli(['shard', 'move', '3', 'global'], admin());
  expect([conflict.code, conflict.stderr]).toEqual([1, expect.stringContaining('shard 3 is already on database "global"')]);
  const t = await createTenantWithAdmin();
  expect((await cli(['shard', 'move', '3', 'global'], t.token)).code).toBe(4);
});
