import pg from 'pg';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, waitForRun } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom } from '../helpers/git';
import { scrape } from '../helpers/prom';

// Issue 14 / ADR 0028: the git-server reports the outboxes' backlog (rows waiting, the oldest's
// age) read from Postgres when scraped, and counts the rows its relays hand on with the latency
// from commit to hand-on. A row that waits (due only tomorrow, written an hour ago) shows in the
// backlog; a push's rows are handed on and timed.

const info = platformInfo();
const gitMetrics = `http://127.0.0.1:${info.gitPort}/metrics`;
let db: pg.Client;
let waitingId: string | undefined;

beforeAll(async () => {
  db = new pg.Client({ connectionString: info.databaseUrl });
  await db.connect();
});
afterAll(async () => {
  if (waitingId) await db.query('DELETE FROM replication_outbox WHERE tenant_id = -1 AND id = $1', [waitingId]);
  await db.end();
});

test('a row that waits shows in the backlog: pending rows and the age of the oldest', async () => {
  const before = await scrape(gitMetrics);
  expect(before.text).toContain('# TYPE dotgit_outbox_pending_rows gauge');
  for (const outbox of ['push', 'webhook', 'replication']) expect([outbox, before.sum('dotgit_outbox_pending_rows', { outbox })]).toEqual([outbox, expect.any(Number)]);
  // Not due before tomorrow, so no relay takes it; no tenant -1 exists.
  const row = await db.query<{ id: string }>(
    `INSERT INTO replication_outbox (tenant_id, repo_id, payload, created_at, next_attempt_at) VALUES (-1, -1, '{}', now() - interval '1 hour', now() + interval '1 day') RETURNING id`,
  );
  waitingId = row.rows[0].id;
  const after = await scrape(gitMetrics);
  expect(after.sum('dotgit_outbox_pending_rows', { outbox: 'replication' })).toBeGreaterThanOrEqual(1);
  expect(after.sum('dotgit_outbox_oldest_pending_age_seconds', { outbox: 'replication' })).toBeGreaterThanOrEqual(3600);
  await db.query('DELETE FROM replication_outbox WHERE tenant_id = -1 AND id = $1', [waitingId]);
  waitingId = undefined;
  // Gone from the backlog: nothing else that old waits on the shared platform.
  expect((await scrape(gitMetrics)).sum('dotgit_outbox_oldest_pending_age_seconds', { outbox: 'replication' })).toBeLessThan(3600);
});

test("a push's outbox rows are handed on, counted and timed", async () => {
  const owner = await createTenantWithAdmin();
  const name = `outboxed-${Date.now().toString(36)}`;
  expect((await api('POST', '/api/v1/repos', { token: owner.token, body: { owner: owner.tenant, name, visibility: 'private' } })).status).toBe(201);
  const before = await scrape(gitMetrics);
  const handed = (s: typeof before, outbox: string) => s.sum('dotgit_outbox_rows_total', { outbox, outcome: 'handed_on' }) ?? 0;
  const timed = (s: typeof before, outbox: string) => s.sum('dotgit_outbox_relay_latency_seconds_count', { outbox }) ?? 0;
  const work = await localRepo({ '.dotgit/pipeline.yml': 'jobs:\n  one:\n    steps:\n      - run: echo hi\n' });
  const push = await git(['push', cloneUrl(owner.tenant, name, owner.token), 'main'], work);
  expect(push.code).toBe(0);
  // The run finishing means its workflow started: the push_outbox row was handed on.
  await waitForRun(runIdsFrom(push.stderr)[0], owner.token);
  const after = await scrape(gitMetrics);
  expect(handed(after, 'push')).toBeGreaterThanOrEqual(handed(before, 'push') + 1);
  expect(timed(after, 'push')).toBeGreaterThanOrEqual(timed(before, 'push') + 1);
  // The platform has a replica zone: the push was queued for replication through its outbox too.
  for (const deadline = Date.now() + 15_000; handed(await scrape(gitMetrics), 'replication') <= handed(before, 'replication') && Date.now() < deadline; ) {
    await new Promise((r) => setTimeout(r, 250));
  }
  expect(handed(await scrape(gitMetrics), 'replication')).toBeGreaterThanOrEqual(handed(before, 'replication') + 1);
});
