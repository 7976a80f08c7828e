import { inTransaction, type Db, type Queryable, type Row } from '../db';
import { hasPendingPipelineStart } from './outbox-store';
import { listRepoOwnedRows } from './repos-store';

/**
 * The runs aggregate's SQL: `runs`, their `steps` (a deploy's steps too: `steps.run_id` is then the
 * deploy's id) and `artifacts`. Every run and step state transition is a function here:
 *
 *   run:  queued -> running -> success | failure | cancelled   (queued -> cancelled | failure before start)
 *   step: queued -> running -> success | failure | cancelled   (queued | running -> skipped | cancelled when the run ends)
 */

/** A new run, `queued` (its start is enqueued by the caller in the same transaction). */
export async function insertQueuedRun(
  q: Queryable,
  run: { tenantId: number; runId: string; repoId: number; ref: string; commit: string; event?: string; inputs?: Record<string, string> },
): Promise<void> {
  // event and inputs (issue 17, migration 0035): what started the run and a hand-started run's inputs.
  await q.query(`INSERT INTO runs (tenant_id, id, repo_id, ref, commit_sha, status, event, inputs) VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7)`, [
    run.tenantId,
    run.runId,
    run.repoId,
    run.ref,
    run.commit,
    run.event ?? null,
    run.inputs ? JSON.stringify(run.inputs) : null,
  ]);
}

/** Whether some run of `commit` in the repository ended `success` (a deploy gate, issue 17 item 9), and the latest run's status otherwise. */
export async function commitPipelineState(q: Queryable, repoId: number, commit: string): Promise<{ green: boolean; latest?: { id: string; status: string } }> {
  const r = await q.query(
    `SELECT id, status FROM runs WHERE repo_id = $1 AND commit_sha = $2 ORDER BY (status = 'success') DESC, created_at DESC LIMIT 1`,
    [repoId, commit],
  );
  const row = r.rows[0] as { id: string; status: string } | undefined;
  return { green: row?.status === 'success', ...(row ? { latest: { id: row.id, status: row.status } } : {}) };
}

/** A repository's runs (with owner and repository name), newest first, at most 100, filtered by column. */
export function listRuns(q: Queryable, repoId: number, filters: { commit_sha?: string; ref?: string; status?: string }): Promise<Row[]> {
  return listRepoOwnedRows(q, 'runs', repoId, filters);
}

/** How many steps of each of these runs (one tenant's) are in each status: what a run list shows instead of the steps. */
export async function countStepsByStatus(q: Queryable, tenantId: number, runIds: string[]): Promise<Map<string, Record<string, number>>> {
  const counts = new Map<string, Record<string, number>>();
  if (runIds.length === 0) return counts;
  const r = await q.query('SELECT run_id, status, count(*)::int AS n FROM steps WHERE tenant_id = $1 AND run_id = ANY($2::text[]) GROUP BY run_id, status', [tenantId, runIds]);
  for (const row of r.rows) {
    const of = counts.get(row.run_id) ?? {};
    of[row.status] = row.n;
    counts.set(row.run_id, of);
  }
  return counts;
}

/** The runs of one commit of a repository, newest first (at most 100). */
export async function listRunsOfCommit(q: Queryable, tenantId: number, repoId: number, sha: string): Promise<Row[]> {
  const r = await q.query(
    `SELECT id, ref, status, message, created_at, started_at, finished_at FROM runs
      WHERE tenant_id = $1 AND repo_id = $2 AND commit_sha = $3 ORDER BY created_at DESC, id DESC LIMIT 100`,
    [tenantId, repoId, sha],
  );
  return r.rows;
}

/** A run's id, ref, commit, status and times, if it exists. */
export async function findRunSummary(q: Queryable, tenantId: number, runId: string): Promise<Row | undefined> {
  const r = await q.query('SELECT id, ref, commit_sha, status, created_at, started_at, finished_at FROM runs WHERE tenant_id = $1 AND id = $2', [tenantId, runId]);
  return r.rows[0];
}

/** A run's status and message ('cancelled' when the row is gone). */
export async function runStatus(q: Queryable, tenantId: number, runId: string): Promise<{ status: string; message: string | null }> {
  const r = await q.query(`SELECT status, message FROM runs WHERE tenant_id = $1 AND id = $2`, [tenantId, runId]);
  return { status: String(r.rows[0]?.status ?? 'cancelled'), message: r.rows[0]?.message ?? null };
}

/** Ids of the runs of every tenant that have not ended (queued or running). */
export async function unfinishedRunIds(q: Queryable): Promise<string[]> {
  const r = await q.query(`SELECT id FROM runs WHERE status IN ('queued', 'running')`);
  return r.rows.map((row) => String(row.id));
}

/**
 * Cancels a run whose workflow has not been started yet; false when it has. Writes the run row only,
 * never an outbox (each outbox is its relay's, ADR 0024): it takes the run row's lock, which a relay
 * holds while it starts the run's workflow (core/pipeline-starts.ts), then reads whether the start
 * still waits. A relay that claims the row later finds the run cancelled and never starts it.
 */
export function cancelUnstartedRun(db: Db, tenantId: number | string, runId: string): Promise<boolean> {
  return inTransaction(db, async (c) => {
    if (!(await lockQueuedRuns(c, [{ tenantId, runId }])).has(runId)) return false;
    // A statement after the lock: it sees what a relay that held the lock committed.
    if (!(await hasPendingPipelineStart(c, tenantId, runId))) return false;
    await c.query(`UPDATE runs SET status = 'cancelled', finished_at = now() WHERE tenant_id = $1 AND id = $2`, [tenantId, runId]);
    return true;
  });
}

/**
 * Cancels a scheduled run still `queued` without (`hasWorkflow`, asked while the run row is locked) a
 * workflow: recorded by its activity, which has not started it yet (no start row: ADR 0024). That
 * activity takes the same lock to start it and skips a run no longer queued. False otherwise (other
 * runs' starts are their relays', `cancelUnstartedRun`).
 */
export function cancelUnstartedScheduledRun(db: Db, tenantId: number | string, runId: string, hasWorkflow: () => Promise<boolean>): Promise<boolean> {
  return inTransaction(db, async (c) => {
    if (!(await lockQueuedRuns(c, [{ tenantId, runId }])).has(runId)) return false;
    const run = await c.query(`SELECT event FROM runs WHERE tenant_id = $1 AND id = $2`, [tenantId, runId]);
    if (run.rows[0]?.event !== 'schedule') return false;
    if (await hasWorkflow()) return false;
    await c.query(`UPDATE runs SET status = 'cancelled', finished_at = now() WHERE tenant_id = $1 AND id = $2`, [tenantId, runId]);
    return true;
  });
}

/**
 * Locks the rows of `runs` for this transaction (a relay about to start their workflows, or a cancel)
 * in one statement, in a fixed order; answers the ids of those still queued.
 */
export async function lockQueuedRuns(q: Queryable, runs: { tenantId: number | string; runId: string }[]): Promise<Set<string>> {
  const r = await q.query<{ id: string; status: string }>(
    `SELECT r.id, r.status FROM runs r JOIN unnest($1::bigint[], $2::text[]) AS w(tenant_id, id) ON r.tenant_id = w.tenant_id AND r.id = w.id
     ORDER BY r.tenant_id, r.id FOR UPDATE OF r`,
    [runs.map((x) => String(x.tenantId)), runs.map((x) => x.runId)],
  );
  return new Set(r.rows.filter((x) => x.status === 'queued').map((x) => x.id));
}

/** A queued run whose workflow could never start: failed with `message`. */
export async function failQueuedRun(q: Queryable, tenantId: number | string, runId: string, message: string): Promise<void> {
  await q.query(`UPDATE runs SET status = 'failure', message = $3, finished_at = now() WHERE tenant_id = $1 AND id = $2 AND status = 'queued'`, [tenantId, runId, message]);
}

/** Marks the run running and creates its step rows, `queued`, in order (idempotent). */
export function startRun(db: Db, tenantId: number, runId: string, steps: { job: string; name: string; needs?: string[] }[]): Promise<void> {
  return inTransaction(db, async (c) => {
    await c.query(`UPDATE runs SET status = 'running', started_at = coalesce(started_at, now()) WHERE tenant_id = $1 AND id = $2 AND status = 'queued'`, [tenantId, runId]);
    await insertQueuedSteps(c, tenantId, runId, steps, 0);
  });
}

/**
 * Ends the run with `status` (and `message`); its steps that never ran end with it (`endOpenSteps`).
 * Answers the status it had before (`was`: a retried call sees the end status) and its duration.
 */
export function finishRun(db: Db, tenantId: number, runId: string, status: string, message: string | null): Promise<{ was: string; seconds: number } | undefined> {
  return inTransaction(db, async (c) => {
    const r = await c.query<{ was: string; seconds: number }>(
      `UPDATE runs r SET status = $3, message = $4, started_at = coalesce(r.started_at, now()), finished_at = now()
       FROM (SELECT status AS was FROM runs WHERE tenant_id = $1 AND id = $2 FOR UPDATE) o
       WHERE r.tenant_id = $1 AND r.id = $2
       RETURNING o.was, extract(epoch FROM r.finished_at - r.created_at)::float8 AS seconds`,
      [tenantId, runId, status, message],
    );
    await endOpenSteps(c, tenantId, runId, status);
    return r.rows[0];
  });
}

/**
 * A run that ended goes back to `queued` as attempt `attempt` (a re-run, run-attempts-store.ts):
 * the steps of `jobs` are queued again, stamped with that attempt. Here with the run's other status
 * changes (issue 12: one place per state machine); the caller holds the run row's lock.
 */
export async function requeueRunForAttempt(q: Queryable, tenantId: number, runId: string, attempt: number, jobs: string[]): Promise<void> {
  await q.query(
    `UPDATE steps SET status = 'queued', exit_code = NULL, log_key = NULL, attempt = NULL, host = NULL, started_at = NULL, finished_at = NULL, run_attempt = $4
     WHERE tenant_id = $1 AND run_id = $2 AND job = ANY($3::text[])`,
    [tenantId, runId, jobs, attempt],
  );
  await q.query(`UPDATE runs SET attempt = $3, status = 'queued', message = NULL, started_at = NULL, finished_at = NULL WHERE tenant_id = $1 AND id = $2`, [tenantId, runId, attempt]);
}

/** Sets the run's message (the reason shown while it is still running or once it ends). */
export async function setRunMessage(q: Queryable, tenantId: number, runId: string, message: string): Promise<void> {
  await q.query(`UPDATE runs SET message = $3 WHERE tenant_id = $1 AND id = $2`, [tenantId, runId, message]);
}

/** A still-queued run's message (why it waits; null clears it); false when the run is no longer queued. */
export async function setQueuedRunMessage(q: Queryable, tenantId: number, runId: string, message: string | null): Promise<boolean> {
  const r = await q.query(`UPDATE runs SET message = $3 WHERE tenant_id = $1 AND id = $2 AND status = 'queued'`, [tenantId, runId, message]);
  return (r.rowCount ?? 0) > 0;
}

/** Why a job's queued steps wait (`steps.waiting`, migration 0039: a job-level concurrency group); null clears it. */
export async function setJobWaiting(q: Queryable, tenantId: number, runId: string, job: string, message: string | null): Promise<void> {
  await q.query(`UPDATE steps SET waiting = $4 WHERE tenant_id = $1 AND run_id = $2 AND job = $3 AND status = 'queued'`, [tenantId, runId, job, message]);
}

/** Advisory-lock space of a run's pending-reason events (two-key form: the space and the run id's hash; ADR 0044). */
const PENDING_EVENTS_LOCK_SPACE = 724044;

/**
 * A running run's steps as its pending reasons read them (core/pending-reasons.ts), in order, read
 * under a transaction-scoped advisory lock on the run: the publishers of its pending events take
 * turns, each reading what the one before it saw and more (ADR 0044). Null when the run is not running.
 */
export async function lockRunForPendingEvents(q: Queryable, tenantId: number, runId: string): Promise<{ job: string; status: string; waiting: string | null; needs: string[] | null }[] | null> {
  await q.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [PENDING_EVENTS_LOCK_SPACE, runId]);
  const run = await q.query<{ status: string }>('SELECT status FROM runs WHERE tenant_id = $1 AND id = $2', [tenantId, runId]);
  if (run.rows[0]?.status !== 'running') return null;
  return (await q.query('SELECT job, status, waiting, needs FROM steps WHERE tenant_id = $1 AND run_id = $2 ORDER BY position', [tenantId, runId])).rows;
}

/** Step rows (of a run or a deploy), `queued`, at positions from `firstPosition` on; existing ones are kept. */
export async function insertQueuedSteps(q: Queryable, tenantId: number, runId: string, steps: { job: string; name: string; needs?: string[] }[], firstPosition: number): Promise<void> {
  let position = firstPosition;
  for (const step of steps) {
    // needs (migration 0040): what the job waits for, read back as its pending reason (ADR 0037).
    await q.query(`INSERT INTO steps (tenant_id, run_id, job, name, position, status, needs) VALUES ($1, $2, $3, $4, $5, 'queued', $6) ON CONFLICT DO NOTHING`, [
      tenantId,
      runId,
      step.job,
      step.name,
      position++,
      step.needs?.length ? step.needs : null,
    ]);
  }
}

/**
 * A dynamic matrix job's rows become its instances' (issue 17 item 1): the job's own rows (queued,
 * made by startRun from the file) are replaced by the instances' steps at the same place, later
 * rows moved down to make room. A re-run's instances keep their rows (ON CONFLICT), and instances
 * an earlier attempt had that this one's matrix no longer makes are dropped. One transaction.
 */
export function replaceJobWithInstances(db: Db, tenantId: number, runId: string, job: string, steps: { job: string; name: string; needs?: string[] }[]): Promise<void> {
  return inTransaction(db, async (c) => {
    const names = [...new Set(steps.map((s) => s.job))];
    const own = await c.query<{ first: number | null; n: number }>(`SELECT min(position) AS first, count(*)::int AS n FROM steps WHERE tenant_id = $1 AND run_id = $2 AND job = $3`, [tenantId, runId, job]);
    await c.query(`DELETE FROM steps WHERE tenant_id = $1 AND run_id = $2 AND (job = $3 OR (starts_with(job, $4) AND NOT job = ANY($5::text[])))`, [tenantId, runId, job, `${job} (`, names]);
    const kept = await c.query<{ last: number | null; n: number }>(`SELECT max(position) AS last, count(*)::int AS n FROM steps WHERE tenant_id = $1 AND run_id = $2 AND job = ANY($3::text[])`, [tenantId, runId, names]);
    const first = own.rows[0]?.first;
    if (kept.rows[0].n === 0 && first !== null && first !== undefined) {
      const grow = steps.length - own.rows[0].n;
      if (grow > 0) await c.query(`UPDATE steps SET position = position + $4 WHERE tenant_id = $1 AND run_id = $2 AND position >= $3`, [tenantId, runId, first, grow]);
      await insertQueuedSteps(c, tenantId, runId, steps, first);
      return;
    }
    const last = (await c.query<{ last: number | null }>(`SELECT max(position) AS last FROM steps WHERE tenant_id = $1 AND run_id = $2`, [tenantId, runId])).rows[0].last;
    await insertQueuedSteps(c, tenantId, runId, steps, (last ?? -1) + 1);
  });
}

/** `insertQueuedSteps` in a transaction of its own: all of them or none. */
export function createQueuedSteps(db: Db, tenantId: number, runId: string, steps: { job: string; name: string }[], firstPosition: number): Promise<void> {
  return inTransaction(db, (c) => insertQueuedSteps(c, tenantId, runId, steps, firstPosition));
}

/** Steps still queued or running when their run (or deploy) ended with `status`: cancelled if it was cancelled, else skipped. */
export async function endOpenSteps(q: Queryable, tenantId: number, runId: string, status: string): Promise<void> {
  await q.query(
    `UPDATE steps SET status = CASE WHEN $3 = 'cancelled' THEN 'cancelled' ELSE 'skipped' END
     WHERE tenant_id = $1 AND run_id = $2 AND status IN ('queued', 'running')`,
    [tenantId, runId, status],
  );
}

/** Every step of a run (or deploy), in order, all columns. */
export async function listSteps(q: Queryable, tenantId: number, runId: string): Promise<Row[]> {
  return (await q.query('SELECT * FROM steps WHERE tenant_id = $1 AND run_id = $2 ORDER BY position', [tenantId, runId])).rows;
}

/** The steps' job, name and stored log key, in order; only `job`'s and/or only the step named `step` when given. */
export async function listStepLogKeys(q: Queryable, tenantId: number, runId: string, only: { job?: string; step?: string }): Promise<{ job: string; name: string; log_key: string | null }[]> {
  const args: unknown[] = [tenantId, runId];
  const filter = jobStepFilter(args, only);
  return (await q.query(`SELECT job, name, log_key FROM steps WHERE tenant_id = $1 AND run_id = $2${filter} ORDER BY position`, args)).rows;
}

/**
 * ` AND job = $n AND name = $m` for whichever of `only`'s fields are given, their values appended
 * to `args` (the steps table and its per-attempt copy filter alike).
 */
export function jobStepFilter(args: unknown[], only: { job?: string; step?: string }): string {
  let filter = '';
  if (only.job !== undefined) {
    args.push(only.job);
    filter += ` AND job = $${args.length}`;
  }
  if (only.step !== undefined) {
    args.push(only.step);
    filter += ` AND name = $${args.length}`;
  }
  return filter;
}

/** A step's status, attempt and host as recorded (before a new attempt marks it running). */
export async function findStepAttempt(q: Queryable, s: StepKey): Promise<{ status: string; attempt: number | null; host: string | null } | undefined> {
  const r = await q.query(`SELECT status, attempt, host FROM steps WHERE tenant_id = $1 AND run_id = $2 AND job = $3 AND name = $4`, [s.tenantId, s.runId, s.job, s.step]);
  return r.rows[0];
}

/** Identifies one step row. */
export interface StepKey {
  tenantId: number;
  runId: string;
  job: string;
  step: string;
}

/** The step is running, as attempt `attempt` on sandbox host `host`; answers the seconds since its run was created. */
export async function markStepRunning(q: Queryable, s: StepKey, attempt: number, host: string): Promise<number | null | undefined> {
  const r = await q.query<{ since_push: number | null }>(
    `UPDATE steps SET status = 'running', started_at = coalesce(started_at, now()), attempt = $5, host = $6
     WHERE tenant_id = $1 AND run_id = $2 AND job = $3 AND name = $4
     RETURNING (SELECT extract(epoch FROM now() - r.created_at)::float8 FROM runs r WHERE r.id = steps.run_id) AS since_push`,
    [s.tenantId, s.runId, s.job, s.step, attempt, host],
  );
  return r.rows[0]?.since_push;
}

/** The step ran: its end status, exit code and stored log; answers how long it ran in seconds. */
export async function recordStepResult(q: Queryable, s: StepKey, status: string, exitCode: number | null, logKey: string): Promise<number | null | undefined> {
  const r = await q.query<{ seconds: number | null }>(
    `UPDATE steps SET status = $5, exit_code = $6, log_key = $7, finished_at = now() WHERE tenant_id = $1 AND run_id = $2 AND job = $3 AND name = $4
     RETURNING extract(epoch FROM finished_at - started_at)::float8 AS seconds`,
    [s.tenantId, s.runId, s.job, s.step, status, exitCode, logKey],
  );
  return r.rows[0]?.seconds;
}

/** A step that could not run at all: failed, and its reason becomes the run's message. */
export async function failStep(q: Queryable, s: StepKey, runMessage: string): Promise<void> {
  await q.query(
    `UPDATE steps SET status = 'failure', finished_at = now(), started_at = coalesce(started_at, now())
     WHERE tenant_id = $1 AND run_id = $2 AND job = $3 AND name = $4`,
    [s.tenantId, s.runId, s.job, s.step],
  );
  await setRunMessage(q, s.tenantId, s.runId, runMessage);
}

/** Skips a job's queued steps; answers the names of those it skipped. */
export async function skipQueuedSteps(q: Queryable, tenantId: number, runId: string, job: string): Promise<string[]> {
  const r = await q.query(`UPDATE steps SET status = 'skipped' WHERE tenant_id = $1 AND run_id = $2 AND job = $3 AND status = 'queued' RETURNING name`, [tenantId, runId, job]);
  return r.rows.map((row) => String(row.name));
}

/** Skips a job's queued steps after step `after`; answers the names of those it skipped. */
export async function skipQueuedStepsAfter(q: Queryable, tenantId: number, runId: string, job: string, after: string): Promise<string[]> {
  const r = await q.query(
    `UPDATE steps SET status = 'skipped' WHERE tenant_id = $1 AND run_id = $2 AND job = $3 AND status = 'queued'
       AND position > (SELECT position FROM steps WHERE tenant_id = $1 AND run_id = $2 AND job = $3 AND name = $4) RETURNING name`,
    [tenantId, runId, job, after],
  );
  return r.rows.map((row) => String(row.name));
}

/** A run's artifacts, by path then job. */
export async function listArtifacts(q: Queryable, tenantId: number, runId: string): Promise<{ job: string; path: string; size: string; sha256: string; created_at: Date }[]> {
  return (await q.query('SELECT job, path, size, sha256, created_at FROM artifacts WHERE tenant_id = $1 AND run_id = $2 ORDER BY path, job', [tenantId, runId])).rows;
}

/** Where an artifact's bytes are: the latest upload of `path` (by `job` when given). */
export async function findArtifact(q: Queryable, tenantId: number, runId: string, path: string, job: string | undefined): Promise<{ object_key: string; size: string } | undefined> {
  const r = await q.query(
    `SELECT object_key, size FROM artifacts WHERE tenant_id = $1 AND run_id = $2 AND path = $3 AND ($4::text IS NULL OR job = $4)
     ORDER BY created_at DESC LIMIT 1`,
    [tenantId, runId, path, job ?? null],
  );
  return r.rows[0];
}

/** Records an uploaded artifact; uploading the same job and path again replaces it. */
export async function upsertArtifact(q: Queryable, a: { tenantId: number; runId: string; job: string; path: string; objectKey: string; size: number; sha256: string }): Promise<void> {
  await q.query(
    `INSERT INTO artifacts (tenant_id, run_id, job, path, object_key, size, sha256) VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (tenant_id, run_id, job, path) DO UPDATE SET object_key = EXCLUDED.object_key, size = EXCLUDED.size, sha256 = EXCLUDED.sha256`,
    [a.tenantId, a.runId, a.job, a.path, a.objectKey, a.size, a.sha256],
  );
}
