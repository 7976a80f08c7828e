import { createDb, type Db } from '../../core/db';
import { drainOutbox } from '../../core/outbox-drainer';
import { platformInfo } from '../harness/platform-info';

// Many git-server instances run outbox relays against one Postgres (issue 11 item 5): the claims
// (FOR UPDATE SKIP LOCKED, stamped in the claiming transaction) must hand each row on exactly once
// however the passes interleave. Three relays, each with its own pool as a process would have,
// drain one outbox table (shaped as push_outbox) at the same time.

const TABLE = `outbox_shared_test_${process.pid}`;
let admin: Db;
const relays: Db[] = [];

beforeAll(async () => {
  admin = createDb(platformInfo().databaseUrl, 2);
  await admin.query(`CREATE TABLE ${TABLE} (LIKE push_outbox INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS INCLUDING INDEXES)`);
  for (let i = 0; i < 3; i++) relays.push(createDb(platformInfo().databaseUrl, 2));
});
afterAll(async () => {
  await admin.query(`DROP TABLE IF EXISTS ${TABLE}`);
  await Promise.all([admin, ...relays].map((d) => d.end()));
});

test('three relays draining one outbox at once hand every row on exactly once', async () => {
  await admin.query(`INSERT INTO ${TABLE} (tenant_id, run_id, payload) SELECT 1, 'run-' || g, '{}' FROM generate_series(1, 300) g`);
  const handed = new Map<string, string[]>();
  const pass = (relay: number) =>
    drainOutbox(
      relays[relay],
      TABLE,
      async (row) => {
        const runId = String(row.run_id);
        handed.set(runId, [...(handed.get(runId) ?? []), `relay ${relay}`]);
        await new Promise((r) => setTimeout(r, Math.random() * 5)); // a Temporal round trip
        return 'done';
      },
      { batch: 10 },
    );
  // Each relay keeps passing until its pass finds nothing, as a PollingRelay would.
  const counts = await Promise.all([0, 1, 2].map(async (relay) => {
    let total = 0;
    for (let n = await pass(relay); n > 0; n = await pass(relay)) total += n;
    return total;
  }));
  expect(handed.size).toBe(300);
  expect([...handed.entries()].filter(([, by]) => by.length > 1)).toEqual([]);
  expect(counts.reduce((a, b) => a + b, 0)).toBe(300);
  expect(counts.filter((c) => c > 0).length).toBeGreaterThan(1); // the work was shared, not done by one
  const { rows } = await admin.query<{ pending: string }>(`SELECT count(*) AS pending FROM ${TABLE} WHERE started_at IS NULL`);
  expect(Number(rows[0].pending)).toBe(0);
});
