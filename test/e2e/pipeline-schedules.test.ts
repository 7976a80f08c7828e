import { Client, Connection, ScheduleNotFoundError } from '@temporalio/client';
import { createDb, type Db } from '../../core/db';
import { startQueuedPipeline } from '../../core/pipeline-starts';
import { insertQueuedRun } from '../../core/stores/runs-store';
import { api, createPrivateRepo, createTenantWithAdmin, waitForRun, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom, writeFiles } from '../helpers/git';
import { platformInfo } from '../harness/platform-info';

// Issue 17 item 6: `on: schedule:` of the default branch's pipeline file becomes Temporal
// Schedules (dotgit-sched-<repoId>-<n>), created, changed and removed with the file, asserted
// through Temporal's schedule API; a schedule triggered on demand queues a run with event `schedule`.

let owner: TenantFixture;
let repo: string;
let repoId: number;
let db: Db;
let connection: Connection;
let client: Client;
let work: string;
let url: string;

const file = (schedule: string) => `on:\n  push:\n    branches: [nothing-pushes-here]\n${schedule}jobs:\n  tick:\n    steps:\n      - run: echo "scheduled run of $DOTGIT_REF"\n`;

beforeAll(async () => {
  const info = platformInfo();
  db = createDb(info.databaseUrl, 2);
  connection = await Connection.connect({ address: info.temporalAddress });
  client = new Client({ connection, namespace: info.namespace });
  owner = await createTenantWithAdmin();
  repo = await createPrivateRepo(owner, 'sched');
  repoId = Number((await db.query('SELECT r.id FROM repos r JOIN tenants t ON t.id = r.tenant_id WHERE t.name = $1 AND r.name = $2', [owner.tenant, repo])).rows[0].id);
  url = cloneUrl(owner.tenant, repo, owner.token);
});

afterAll(async () => {
  await connection?.close();
  await db?.end();
});

/** The schedule's cron entries as Temporal holds them (undefined when it does not exist), once they equal `want`. */
async function cronOf(n: number, want: string | undefined, timeoutMs = 30_000): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let got: string | undefined;
    try {
      const d = await client.schedule.getHandle(`dotgit-sched-${repoId}-${n}`).describe();
      got = JSON.stringify({ calendars: d.spec.calendars, memoRepo: d.memo?.repo, workflowType: d.action.workflowType });
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
    }
    if (got === want || Date.now() > deadline) return got;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** What Temporal makes of a cron: read back from a schedule the test creates itself, so the comparison does not depend on the SDK's calendar shape. */
async function expected(cron: string): Promise<string> {
  const id = `test-cron-shape-${Math.random().toString(36).slice(2)}`;
  const h = await client.schedule.create({ scheduleId: id, spec: { cronExpressions: [cron] }, action: { type: 'startWorkflow', workflowType: 'scheduledPipeline', taskQueue: 'none', args: [] }, state: { paused: true } });
  try {
    const d = await h.describe();
    return JSON.stringify({ calendars: d.spec.calendars, memoRepo: `${owner.tenant}/${repo}`, workflowType: 'scheduledPipeline' });
  } finally {
    await h.delete();
  }
}

async function push(text: string): Promise<string[]> {
  await writeFiles(work, { '.dotgit/pipeline.yml': text });
  await git(['add', '-A'], work);
  await git(['commit', '-qm', 'pipeline'], work);
  const pushed = await git(['push', url, 'main'], work);
  expect(pushed.code).toBe(0);
  return runIdsFrom(pushed.stderr);
}

test('a cron schedule is created on push, changed, triggered on demand (a run with event schedule), and removed', async () => {
  work = await localRepo({ '.dotgit/pipeline.yml': file('  schedule: [{ cron: "0 3 * * *" }]\n') });
  expect(runIdsFrom((await git(['push', url, 'main'], work)).stderr)).toEqual([]);
  const daily = await expected('0 3 * * *');
  expect(await cronOf(0, daily)).toBe(daily);
  expect(await cronOf(1, undefined, 0)).toBeUndefined();

  // Changed: the first entry's cron (weekdays of February only) and a second entry (steps, on 29
  // February only), so that neither fires by itself while the test counts the runs it triggers.
  await push(file('  schedule:\n    - cron: "15 4 * 2 MON-FRI"\n    - cron: "*/30 2 29 2 *"\n'));
  const [weekdays, leapDayHalfHours] = [await expected('15 4 * 2 MON-FRI'), await expected('*/30 2 29 2 *')];
  expect(await cronOf(0, weekdays)).toBe(weekdays);
  expect(await cronOf(1, leapDayHalfHours)).toBe(leapDayHalfHours);

  // Triggered on demand: the schedule's workflow queues a run of main with event schedule.
  await client.schedule.getHandle(`dotgit-sched-${repoId}-1`).trigger();
  const deadline = Date.now() + 60_000;
  let run: { id: string } | undefined;
  while (!run && Date.now() < deadline) {
    const list = await api('GET', `/api/v1/repos/${owner.tenant}/${repo}/runs`, { token: owner.token });
    run = (list.body.runs as { id: string; event: string }[]).find((r) => r.event === 'schedule');
    if (!run) await new Promise((r) => setTimeout(r, 500));
  }
  expect(run).toBeDefined();
  const done = await waitForRun(run!.id, owner.token);
  expect(done).toMatchObject({ status: 'success', event: 'schedule', ref: 'refs/heads/main' });
  const logs = await api('GET', `/api/v1/runs/${encodeURIComponent(run!.id)}/logs`, { token: owner.token });
  expect(logs.text).toContain('scheduled run of refs/heads/main');
  // Started by the worker itself (ADR 0024): no start row in the git-server's outbox, and run once.
  expect((await db.query('SELECT count(*)::int AS n FROM push_outbox WHERE run_id = $1', [run!.id])).rows[0].n).toBe(0);
  const scheduled = await api('GET', `/api/v1/repos/${owner.tenant}/${repo}/runs`, { token: owner.token });
  expect((scheduled.body.runs as { event: string }[]).filter((r) => r.event === 'schedule')).toHaveLength(1);

  // Another branch's file changes nothing.
  await git(['checkout', '-qb', 'side'], work);
  await writeFiles(work, { '.dotgit/pipeline.yml': file('') });
  await git(['commit', '-qam', 'side'], work);
  expect((await git(['push', url, 'side'], work)).code).toBe(0);
  await git(['checkout', '-q', 'main'], work);

  // Removed from the default branch's file: both schedules go.
  await push(file(''));
  expect(await cronOf(0, undefined)).toBeUndefined();
  expect(await cronOf(1, undefined)).toBeUndefined();
}, 240_000);

test('a cron that does not parse fails the push run with the line and the problem', async () => {
  const bad = await createPrivateRepo(owner, 'badcron');
  const w = await localRepo({ '.dotgit/pipeline.yml': 'on:\n  push:\n  schedule:\n    - cron: "0 25 * * *"\njobs:\n  a:\n    steps: [{ run: "true" }]\n' });
  const pushed = await git(['push', cloneUrl(owner.tenant, bad, owner.token), 'main'], w);
  const [runId] = runIdsFrom(pushed.stderr);
  const run = await waitForRun(runId, owner.token);
  expect(run.status).toBe('failure');
  expect(run.message).toMatch(/\.dotgit\/pipeline\.yml:4:\d+: on\.schedule\.0\.cron: "0 25 \* \* \*" does not parse: .*hour/);
}, 120_000);

test('a scheduled run cancelled between its recording and its start is never started', async () => {
  // What queueScheduledRun has done when the cancel comes: the run recorded, its workflow not started (no start row anywhere, ADR 0024).
  const tenantId = Number((await db.query('SELECT tenant_id FROM repos WHERE id = $1', [repoId])).rows[0].tenant_id);
  const commit = (await db.query('SELECT commit_sha FROM runs WHERE repo_id = $1 ORDER BY created_at LIMIT 1', [repoId])).rows[0].commit_sha;
  const input = { runId: `pipeline:${owner.tenant}:${repo}:schedule-cancel-${Date.now()}`, tenantId, tenant: owner.tenant, repoId, repo, ref: 'refs/heads/main', commit, event: 'schedule' as const };
  await insertQueuedRun(db, input);
  expect((await api('POST', `/api/v1/runs/${encodeURIComponent(input.runId)}/cancel`, { token: owner.token })).status).toBe(202);
  expect((await db.query('SELECT status FROM runs WHERE id = $1', [input.runId])).rows[0].status).toBe('cancelled');
  // The activity then takes the run's lock, finds it no longer queued, and starts nothing.
  expect(await startQueuedPipeline(db, async () => client, input)).toBe('not queued');
  await expect(client.workflow.getHandle(input.runId).describe()).rejects.toThrow(/not found/i);
});
