import { inTransaction, type Db, type Queryable, type Row } from '../db';
import { jobStepFilter, requeueRunForAttempt } from './runs-store';

/**
 * Re-runs' SQL (issue 17 item 5, migration 0033; ADR 0030): a run's attempts (`runs.attempt`,
 * `run_attempts` for the ones that ended), the steps as each earlier attempt left them
 * (`run_attempt_steps`), and the outputs of its jobs (`job_outputs`) that a later attempt reuses.
 * `steps` stays the run's latest view: `steps.run_attempt` is the attempt that produced each row.
 */

/** Jobs that a re-run sets going again: all of them, or those with a step that did not succeed. */
export type RerunScope = 'all' | 'failed';

export type StartAttemptResult =
  | { ok: true; attempt: number; jobs: string[] }
  | { ok: false; reason: 'not-finished'; status: string }
  | { ok: false; reason: 'nothing-failed' };

/**
 * Begins attempt N+1 of a run that has ended: the finished attempt is copied to `run_attempts` and
 * `run_attempt_steps`; the steps of the jobs to run again go back to `queued` (stamped with the new
 * attempt); the run is `queued` again. One transaction, the run row locked, so two re-runs of one
 * attempt never both begin.
 */
export function beginRunAttempt(db: Db, tenantId: number, runId: string, scope: RerunScope, requestedBy: string): Promise<StartAttemptResult> {
  return inTransaction(db, async (c) => {
    const run = (await c.query('SELECT * FROM runs WHERE tenant_id = $1 AND id = $2 FOR UPDATE', [tenantId, runId])).rows[0];
    if (!['success', 'failure', 'cancelled'].includes(run.status)) return { ok: false, reason: 'not-finished', status: String(run.status) };
    const jobs = (
      await c.query<{ job: string; ok: boolean }>(`SELECT job, bool_and(status = 'success') AS ok FROM steps WHERE tenant_id = $1 AND run_id = $2 GROUP BY job`, [tenantId, runId])
    ).rows;
    const again = jobs.filter((j) => scope === 'all' || !j.ok).map((j) => j.job);
    // A run that failed before it had steps (an invalid file, a lost start) runs again from scratch.
    if (scope === 'failed' && again.length === 0 && run.status === 'success') return { ok: false, reason: 'nothing-failed' };
    const previous = Number(run.attempt);
    const next = previous + 1;
    await c.query(
      `INSERT INTO run_attempts (tenant_id, run_id, attempt, status, message, failed_only, requested_by, created_at, started_at, finished_at)
       SELECT tenant_id, id, attempt, status, message, false, NULL, created_at, started_at, finished_at FROM runs WHERE tenant_id = $1 AND id = $2
       ON CONFLICT (tenant_id, run_id, attempt) DO UPDATE SET status = EXCLUDED.status, message = EXCLUDED.message, started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at`,
      [tenantId, runId],
    );
    await c.query(
      `INSERT INTO run_attempt_steps (tenant_id, run_id, attempt, job, name, position, status, exit_code, log_key, step_attempt, host, run_attempt, started_at, finished_at)
       SELECT tenant_id, run_id, $3, job, name, position, status, exit_code, log_key, attempt, host, run_attempt, started_at, finished_at FROM steps WHERE tenant_id = $1 AND run_id = $2
       ON CONFLICT DO NOTHING`,
      [tenantId, runId, previous],
    );
    await c.query(`DELETE FROM job_outputs WHERE tenant_id = $1 AND run_id = $2 AND job = ANY($3::text[])`, [tenantId, runId, again]);
    await requeueRunForAttempt(c, tenantId, runId, next, again);
    await c.query(
      `INSERT INTO run_attempts (tenant_id, run_id, attempt, status, failed_only, requested_by, created_at) VALUES ($1, $2, $3, 'queued', $4, $5, now())`,
      [tenantId, runId, next, scope === 'failed', requestedBy],
    );
    return { ok: true, attempt: next, jobs: again };
  });
}

/** The attempts of a run, oldest first; the current one's times and status come from the run itself. */
export async function listRunAttempts(q: Queryable, tenantId: number, runId: string): Promise<Row[]> {
  return (await q.query('SELECT * FROM run_attempts WHERE tenant_id = $1 AND run_id = $2 ORDER BY attempt', [tenantId, runId])).rows;
}

/** The steps as attempt `attempt` left them (earlier attempts only), in order. */
export async function listAttemptSteps(q: Queryable, tenantId: number, runId: string, attempt: number): Promise<Row[]> {
  return (await q.query('SELECT * FROM run_attempt_steps WHERE tenant_id = $1 AND run_id = $2 AND attempt = $3 ORDER BY position', [tenantId, runId, attempt])).rows;
}

/** Keeps a job's outputs for later attempts (the latest attempt's win). */
export async function upsertJobOutputs(q: Queryable, tenantId: number, runId: string, job: string, outputs: Record<string, string>, attempt: number): Promise<void> {
  await q.query(
    `INSERT INTO job_outputs (tenant_id, run_id, job, outputs, run_attempt) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (tenant_id, run_id, job) DO UPDATE SET outputs = EXCLUDED.outputs, run_attempt = EXCLUDED.run_attempt`,
    [tenantId, runId, job, JSON.stringify(outputs), attempt],
  );
}

/** The jobs of a run whose steps all succeeded (a re-run reuses them), each with its kept outputs ({} when none). */
export async function findReusableJobs(q: Queryable, tenantId: number, runId: string): Promise<Record<string, Record<string, string>>> {
  const r = await q.query<{ job: string; outputs: Record<string, string> | null }>(
    `SELECT s.job, o.outputs FROM (SELECT job FROM steps WHERE tenant_id = $1 AND run_id = $2 GROUP BY job HAVING bool_and(status = 'success')) s
     LEFT JOIN job_outputs o ON o.tenant_id = $1 AND o.run_id = $2 AND o.job = s.job`,
    [tenantId, runId],
  );
  return Object.fromEntries(r.rows.map((row) => [row.job, row.outputs ?? {}]));
}

/** The steps' job, name and stored log key as attempt `attempt` left them (earlier attempts only); only `job`'s and/or `step` when given. */
export async function listAttemptStepLogKeys(q: Queryable, tenantId: number, runId: string, attempt: number, only: { job?: string; step?: string }): Promise<{ job: string; name: string; log_key: string | null }[]> {
  const args: unknown[] = [tenantId, runId, attempt];
  const filter = jobStepFilter(args, only);
  return (await q.query(`SELECT job, name, log_key FROM run_attempt_steps WHERE tenant_id = $1 AND run_id = $2 AND attempt = $3${filter} ORDER BY position`, args)).rows;
}
