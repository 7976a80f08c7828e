import { createDb, type Db } from '../../core/db';
import { reposNeedingMaintenance } from '../../core/storage-nodes';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, uniqueName } from '../helpers/api-client';

// The maintenance sweep lists only repositories whose storage node is up (ADR 0014): a repack waits
// for the worker beside the node, so a down node's repositories must not hold up the sweep (they
// keep their push counts for a later one). Seen in CI: repositories of test nodes that had been
// stopped held the hourly sweep, and the housekeeping beside it, for minutes.

let db: Db;

beforeAll(() => {
  db = createDb(platformInfo().databaseUrl, 2);
});

afterAll(async () => {
  await db.end();
});

test("a repository on a down node is left out of the sweep's list; one on an up node is in it", async () => {
  const owner = await createTenantWithAdmin();
  const names = { up: uniqueName('mnt-up'), down: uniqueName('mnt-down') };
  for (const name of Object.values(names)) {
    expect((await api('POST', '/api/v1/repos', { token: owner.token, body: { owner: owner.tenant, name } })).status).toBe(201);
  }
  const down = `down-${names.down}`.slice(0, 60);
  await db.query(`INSERT INTO storage_nodes (id, url, heartbeat_at, started_at) VALUES ($1, 'http://127.0.0.1:9', now() - interval '1 hour', now() - interval '2 hours')`, [down]);
  await db.query(
    `UPDATE repos SET pushes_since_maintenance = 1000000, node_id = CASE WHEN name = $3 THEN $4 ELSE node_id END
      WHERE tenant_id = (SELECT id FROM tenants WHERE name = $1) AND name IN ($2, $3)`,
    [owner.tenant, names.up, names.down, down],
  );
  const listed = (await reposNeedingMaintenance(db, 1000)).filter((t) => t.tenant === owner.tenant);
  expect(listed.map((t) => t.repo)).toEqual([names.up]);
  // It names its (up) node, so the repack goes to that node's queue.
  const upNode = (await api('GET', `/api/v1/repos/${owner.tenant}/${names.up}`, { token: owner.token })).body.node;
  expect(listed[0]).toMatchObject({ node: upNode });
  // Back up: listed again.
  await db.query(`UPDATE storage_nodes SET heartbeat_at = now() WHERE id = $1`, [down]);
  expect((await reposNeedingMaintenance(db, 1000)).filter((t) => t.tenant === owner.tenant).map((t) => t.repo).sort()).toEqual([names.down, names.up].sort());
  // Leave nothing that a later sweep would wait on.
  await db.query(`UPDATE repos SET pushes_since_maintenance = 0 WHERE tenant_id = (SELECT id FROM tenants WHERE name = $1)`, [owner.tenant]);
  await db.query(`UPDATE storage_nodes SET heartbeat_at = now() - interval '1 hour' WHERE id = $1`, [down]);
});
