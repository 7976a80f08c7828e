import { inTransaction, type Db, type Queryable, type Row } from '../db';
import { listRepoOwnedRows } from './repos-store';
import { endOpenSteps } from './runs-store';

/**
 * The deploys aggregate's SQL (`deploys`; a deploy's step rows are in runs-store). Every deploy
 * state transition is a function here:
 *
 *   queued -> waiting_approval -> running -> success | failure | rolled_back | cancelled
 *   waiting_approval -> rejected;  queued -> failure when its workflow could not be started
 */

/** A new deploy, `queued`, requested by `requestedBy`. */
export async function insertQueuedDeploy(
  q: Queryable,
  d: { tenantId: number; id: string; repoId: number; environment: string; ref: string; commit: string; requestedBy: string },
): Promise<void> {
  await q.query(
    `INSERT INTO deploys (tenant_id, id, repo_id, environment, ref, commit_sha, status, requested_by) VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7)`,
    [d.tenantId, d.id, d.repoId, d.environment, d.ref, d.commit, d.requestedBy],
  );
}

/** A deploy whose workflow could not be started: failed with `message` (never a queued row with nothing behind it). */
export async function failUnstartedDeploy(q: Queryable, tenantId: number, id: string, message: string): Promise<void> {
  await q.query(`UPDATE deploys SET status = 'failure', message = $3, finished_at = now() WHERE tenant_id = $1 AND id = $2`, [tenantId, id, message]);
}

/** A repository's deploys (of one environment when given), newest first, at most 100, with owner and repository name. */
export function listDeploys(q: Queryable, repoId: number, environment: string | undefined): Promise<Row[]> {
  return listRepoOwnedRows(q, 'deploys', repoId, { environment });
}

/** A deploy's status and message ('cancelled' when the row is gone). */
export async function deployStatus(q: Queryable, tenantId: number, id: string): Promise<{ status: string; message: string | null }> {
  const r = await q.query(`SELECT status, message FROM deploys WHERE tenant_id = $1 AND id = $2`, [tenantId, id]);
  return { status: String(r.rows[0]?.status ?? 'cancelled'), message: r.rows[0]?.message ?? null };
}

/** Ids of the deploys of every tenant that have not ended. */
export async function unfinishedDeployIds(q: Queryable): Promise<string[]> {
  const r = await q.query(`SELECT id FROM deploys WHERE status IN ('queued', 'waiting_approval', 'running')`);
  return r.rows.map((row) => String(row.id));
}

/** A status change on the way (`running` stamps the start once); `decidedBy` records who approved or rejected it. */
export async function setDeployStatus(q: Queryable, tenantId: number, id: string, status: string, decidedBy: string | null): Promise<void> {
  await q.query(
    `UPDATE deploys SET status = $3,
       started_at = CASE WHEN $3 = 'running' THEN coalesce(started_at, now()) ELSE started_at END,
       decided_by = coalesce($4, decided_by), decided_at = CASE WHEN $4::text IS NULL THEN decided_at ELSE now() END
     WHERE tenant_id = $1 AND id = $2`,
    [tenantId, id, status, decidedBy],
  );
}

/** Ends the deploy with `status`; its steps that never ran end with it. */
export function finishDeploy(
  db: Db,
  d: { tenantId: number; id: string; status: string; message: string | null; rollbackTo: string | null; decidedBy: string | null },
): Promise<void> {
  return inTransaction(db, async (c) => {
    await c.query(
      `UPDATE deploys SET status = $3, message = $4, rollback_to = $5, finished_at = now(),
         decided_by = coalesce($6, decided_by), decided_at = CASE WHEN $6::text IS NULL THEN decided_at ELSE now() END
       WHERE tenant_id = $1 AND id = $2`,
      [d.tenantId, d.id, d.status, d.message, d.rollbackTo, d.decidedBy],
    );
    await endOpenSteps(c, d.tenantId, d.id, d.status);
  });
}

/** The environment's most recent successful deploy other than `excludeId`: what a rollback returns to. */
export async function lastGoodDeploy(q: Queryable, tenantId: number, repoId: number, environment: string, excludeId: string): Promise<{ id: string; commit: string } | null> {
  const r = await q.query(
    `SELECT id, commit_sha FROM deploys WHERE tenant_id = $1 AND repo_id = $2 AND environment = $3 AND status = 'success' AND id <> $4
     ORDER BY finished_at DESC LIMIT 1`,
    [tenantId, repoId, environment, excludeId],
  );
  return r.rows[0] ? { id: r.rows[0].id, commit: r.rows[0].commit_sha } : null;
}

/** The deploy holding its environment's lock (running or waiting for approval: the lock is taken first), if any. */
export async function environmentLockHolder(q: Queryable, tenantId: number, repoId: number, environment: string, excludeId: string): Promise<string | undefined> {
  const r = await q.query(
    `SELECT id FROM deploys WHERE tenant_id = $1 AND repo_id = $2 AND environment = $3 AND id <> $4 AND status IN ('running', 'waiting_approval') ORDER BY created_at LIMIT 1`,
    [tenantId, repoId, environment, excludeId],
  );
  return r.rows[0]?.id as string | undefined;
}
