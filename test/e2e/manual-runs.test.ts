import { Connection, Client, WorkflowNotFoundError } from '@temporalio/client';
import { createDb, type Db } from '../../core/db';
import { insertQueuedRun } from '../../core/stores/runs-store';
import { api, createPrivateRepo, createTenantWithAdmin, waitForRun, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo } from '../helpers/git';
import { platformInfo } from '../harness/platform-info';

// Run creation through the API (protocol translation at the edge): 202 Accepted with the run's
// tracking id at once; the run itself follows through the api's own outbox and relay (ADR 0024:
// run_request_outbox, drained by the api with the code the git-server's push relay runs).

let owner: TenantFixture;
let repo: string;
let commit: string;
let db: Db;

afterAll(async () => {
  await db?.end();
});

beforeAll(async () => {
  db = createDb(platformInfo().databaseUrl, 2);
  owner = await createTenantWithAdmin();
  repo = await createPrivateRepo(owner, 'man');
  // Push filters exclude main, so the push itself starts nothing; a manual run ignores the filters.
  const work = await localRepo({ '.dotgit/pipeline.yml': 'on:\n  push:\n    branches: [release]\njobs:\n  hello:\n    steps:\n      - run: echo "manual run of $DOTGIT_REF"\n' });
  expect((await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work)).code).toBe(0);
  commit = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
});

test('POST …/runs answers 202 with the run id and links; the run then succeeds', async () => {
  const r = await api('POST', `/api/v1/repos/${owner.tenant}/${repo}/runs`, { token: owner.token, body: { ref: 'main' } });
  expect(r.status).toBe(202);
  expect(r.body).toMatchObject({ status: 'queued', ref: 'refs/heads/main', commit });
  expect(r.body.id).toMatch(new RegExp(`^pipeline:${owner.tenant}:${repo}:manual-`));
  expect(r.headers.get('location')).toBe(r.body.links.self);
  // Readable at once: the row is written before the answer.
  expect((await api('GET', r.body.links.self, { token: owner.token })).status).toBe(200);
  const run = await waitForRun(r.body.id, owner.token);
  expect(run.status).toBe('success');
  const logs = await api('GET', `${r.body.links.self}/logs`, { token: owner.token });
  expect(logs.text).toContain('manual run of refs/heads/main');
  // The api's own outbox carried the start (handed on), the git-server's push_outbox nothing.
  expect((await db.query('SELECT started_at IS NOT NULL AS handed, last_error FROM run_request_outbox WHERE run_id = $1', [r.body.id])).rows).toEqual([{ handed: true, last_error: null }]);
  expect((await db.query('SELECT 1 FROM push_outbox WHERE run_id = $1', [r.body.id])).rows).toEqual([]);
});

test("cancelled before the api's relay starts it, a run never starts; a cancel while the relay hands it on leaves it to Temporal", async () => {
  const { rows } = await db.query<{ id: string; tenant_id: string }>('SELECT r.id, r.tenant_id FROM repos r JOIN tenants t ON t.id = r.tenant_id WHERE t.name = $1 AND r.name = $2', [owner.tenant, repo]);
  const tenantId = Number(rows[0].tenant_id);
  const repoId = Number(rows[0].id);
  // A queued run whose start row is not due yet: as if the relay had not got to it.
  const queue = async (tag: string) => {
    const runId = `pipeline:${owner.tenant}:${repo}:manual-${tag}-${process.pid}`;
    await insertQueuedRun(db, { tenantId, runId, repoId, ref: 'refs/heads/main', commit, event: 'manual' });
    const input = { runId, tenantId, tenant: owner.tenant, repoId, repo, ref: 'refs/heads/main', commit, event: 'manual' };
    await db.query(`INSERT INTO run_request_outbox (tenant_id, run_id, payload, next_attempt_at) VALUES ($1, $2, $3, now() + interval '1 day')`, [tenantId, runId, JSON.stringify(input)]);
    return runId;
  };
  const cancel = (runId: string) => api('POST', `/api/v1/runs/${encodeURIComponent(runId)}/cancel`, { token: owner.token });
  const statusOf = async (runId: string) => (await api('GET', `/api/v1/runs/${encodeURIComponent(runId)}`, { token: owner.token })).body.status;
  const temporal = new Client({ connection: await Connection.connect({ address: platformInfo().temporalAddress }), namespace: platformInfo().namespace });
  try {
    const early = await queue('early-cancel');
    expect((await cancel(early)).status).toBe(202);
    expect(await statusOf(early)).toBe('cancelled');
    // Now due: the api's relay claims it, finds the run cancelled and stamps it without a start.
    await db.query('UPDATE run_request_outbox SET next_attempt_at = now() WHERE run_id = $1', [early]);
    let row: { started: boolean; last_error: string | null } | undefined;
    for (let i = 0; i < 240 && !row?.started; i++) {
      row = (await db.query('SELECT started_at IS NOT NULL AS started, last_error FROM run_request_outbox WHERE run_id = $1', [early])).rows[0];
      if (!row?.started) await new Promise((r) => setTimeout(r, 250));
    }
    expect(row).toEqual({ started: true, last_error: 'cancelled before start' });
    await expect(temporal.workflow.getHandle(early).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);
    expect(await statusOf(early)).toBe('cancelled');

    // A relay holds the run row while it starts the workflow; the cancel waits for it, then sees
    // the start handed on and leaves the run to Temporal (here there is no workflow: it stays queued).
    const racing = await queue('racing-cancel');
    const relay = await db.connect();
    try {
      await relay.query('BEGIN');
      await relay.query('SELECT status FROM runs WHERE tenant_id = $1 AND id = $2 FOR UPDATE', [tenantId, racing]);
      const me = Number((await relay.query('SELECT pg_backend_pid() AS pid')).rows[0].pid);
      const cancelling = cancel(racing);
      // Until the api's cancel is blocked behind this transaction.
      for (let i = 0; i < 240; i++) {
        const blocked = await db.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))', [me]);
        if (blocked.rows[0].n > 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      await relay.query('UPDATE run_request_outbox SET started_at = now() WHERE tenant_id = $1 AND run_id = $2', [tenantId, racing]);
      await relay.query('COMMIT');
      expect((await cancelling).status).toBe(202);
    } finally {
      relay.release();
    }
    expect(await statusOf(racing)).toBe('queued');
    await db.query(`UPDATE runs SET status = 'failure', finished_at = now() WHERE tenant_id = $1 AND id = $2`, [tenantId, racing]);
  } finally {
    await temporal.connection.close();
  }
});

test('bad run requests get clear 4xx answers', async () => {
  const post = (body: unknown, token = owner.token) => api('POST', `/api/v1/repos/${owner.tenant}/${repo}/runs`, { token, body });
  const noRef = await post({});
  expect(noRef.status).toBe(400);
  expect(noRef.body.error.message).toMatch(/ref must be/);
  const unknown = await post({ ref: 'nope' });
  expect(unknown.status).toBe(404);
  expect(unknown.body.error.message).toMatch(/not found/);
  const reader = await api<{ token: string }>('POST', '/api/v1/tokens', { token: owner.token, body: { scopes: ['read'] } });
  expect((await post({ ref: 'main' }, reader.body.token)).status).toBe(403);
  const stranger = await createTenantWithAdmin();
  expect((await post({ ref: 'main' }, stranger.token)).status).toBe(404);
});

test('a burst of runs queued at once, more than one relay batch, all start and succeed', async () => {
  // The relay claims 20 outbox rows at a time and starts them together: every run of the burst
  // must get its workflow, none lost or started twice.
  const burst = 25;
  const created = await Promise.all(Array.from({ length: burst }, () => api('POST', `/api/v1/repos/${owner.tenant}/${repo}/runs`, { token: owner.token, body: { ref: 'main' } })));
  expect(created.map((r) => r.status)).toEqual(Array(burst).fill(202));
  const ids = created.map((r) => r.body.id as string);
  expect(new Set(ids).size).toBe(burst);
  const runs = await Promise.all(ids.map((id) => waitForRun(id, owner.token, 240_000)));
  expect(runs.map((r) => r.status)).toEqual(Array(burst).fill('success'));
  // One execution per run: each ran its one step once.
  expect(runs.every((r) => r.steps.length === 1 && r.steps[0].status === 'success')).toBe(true);
}, 300_000);
