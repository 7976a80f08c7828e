import type { Queryable, Row } from '../db';

/** The backups aggregate's SQL (platform-wide, not per tenant): `backups` and `restores` (restores and drills). */

/** A backup started through the api, `running`. */
export async function insertApiBackup(q: Queryable, id: string): Promise<void> {
  await q.query(`INSERT INTO backups (id, trigger, status) VALUES ($1, 'api', 'running')`, [id]);
}

/** A backup that failed (or never started), with why. */
export async function failBackup(q: Queryable, id: string, error: string): Promise<void> {
  await q.query(`UPDATE backups SET status = 'failed', finished_at = now(), error = $2 WHERE id = $1`, [id, error]);
}

/** Every backup, newest first (at most 1000). */
export async function listBackups(q: Queryable): Promise<Row[]> {
  const r = await q.query(`SELECT id, trigger, status, started_at, finished_at, repos, changed, postgres_base, error FROM backups ORDER BY started_at DESC, id DESC LIMIT 1000`);
  return r.rows;
}

/** The newest complete backup's id (what the backup-age metric reads its manifest by), or undefined. */
export async function newestCompleteBackupId(q: Queryable): Promise<string | undefined> {
  const r = await q.query<{ id: string }>(`SELECT id FROM backups WHERE status = 'complete' ORDER BY finished_at DESC, id DESC LIMIT 1`);
  return r.rows[0]?.id;
}

/** A restore started through the api, `running`, to the time `at`. */
export async function insertApiRestore(q: Queryable, id: string, at: Date): Promise<void> {
  await q.query(`INSERT INTO restores (id, kind, at, status) VALUES ($1, 'restore', $2, 'running')`, [id, at]);
}

/** A restore that failed (or never started), with its problems. */
export async function failRestore(q: Queryable, id: string, problems: string[]): Promise<void> {
  await q.query(`UPDATE restores SET status = 'failed', finished_at = now(), problems = $2 WHERE id = $1`, [id, JSON.stringify(problems)]);
}

/** Restores and daily drills, newest first (at most 100): what the admin page shows. */
export async function listRestores(q: Queryable): Promise<Row[]> {
  const r = await q.query(`SELECT id, kind, at, status, backup_id, dir, problems, started_at, finished_at FROM restores ORDER BY started_at DESC, id DESC LIMIT 100`);
  return r.rows;
}

/** One restore (or drill) by id. */
export async function findRestore(q: Queryable, id: string): Promise<Row | undefined> {
  return (await q.query(`SELECT id, kind, at, status, backup_id, dir, problems, started_at, finished_at FROM restores WHERE id = $1`, [id])).rows[0];
}

/** Every restore's id, status and end, and whether it has been running longer than `maxRunningHours`. */
export async function listRestoreStates(q: Queryable, maxRunningHours: number): Promise<{ id: string; status: string; finished_at: Date | null; running_long: boolean }[]> {
  const r = await q.query<{ id: string; status: string; finished_at: Date | null; running_long: boolean }>(
    `SELECT id, status, finished_at, started_at < now() - make_interval(hours => $1) AS running_long FROM restores`,
    [maxRunningHours],
  );
  return r.rows;
}

/** The restores' copies are gone: no `dir` to point at any more. */
export async function clearRestoreDirs(q: Queryable, ids: string[]): Promise<void> {
  await q.query('UPDATE restores SET dir = NULL WHERE id = ANY($1)', [ids]);
}

/** A backup the workflow starts (`trigger`: schedule or api), `running`; a retried start keeps the row. */
export async function startBackupRecord(q: Queryable, id: string, trigger: string): Promise<void> {
  await q.query(`INSERT INTO backups (id, trigger, status) VALUES ($1, $2, 'running') ON CONFLICT (id) DO NOTHING`, [id, trigger]);
}

/** A backup whose manifest is written: `complete`, with what it holds (`error`: a partial backup's note). */
export async function completeBackup(q: Queryable, b: { id: string; finishedAt: string; repos: number; changed: number; postgresBase: boolean; error: string | null }): Promise<void> {
  await q.query(`UPDATE backups SET status = 'complete', finished_at = $2, repos = $3, changed = $4, postgres_base = $5, error = $6 WHERE id = $1`, [
    b.id,
    b.finishedAt,
    b.repos,
    b.changed,
    b.postgresBase,
    b.error,
  ]);
}

/** A running backup failed, with why. */
export async function failRunningBackup(q: Queryable, id: string, error: string): Promise<void> {
  await q.query(`UPDATE backups SET status = 'failed', finished_at = now(), error = $2 WHERE id = $1 AND status = 'running'`, [id, error]);
}

/** Deletes the rows of removed backups. */
export async function deleteBackups(q: Queryable, ids: string[]): Promise<void> {
  await q.query('DELETE FROM backups WHERE id = ANY($1)', [ids]);
}

/** A restore or drill the workflow starts, `running`; a retried start keeps the row. */
export async function startRestoreRecord(q: Queryable, id: string, kind: string, at: string): Promise<void> {
  await q.query(`INSERT INTO restores (id, kind, at, status) VALUES ($1, $2, $3, 'running') ON CONFLICT (id) DO NOTHING`, [id, kind, at]);
}

/** A restore is done: from which backup, into which directory. */
export async function completeRestore(q: Queryable, id: string, backupId: string, dir: string): Promise<void> {
  await q.query(`UPDATE restores SET status = 'complete', finished_at = now(), backup_id = $2, dir = $3 WHERE id = $1`, [id, backupId, dir]);
}

/** A drill's verdict: complete or failed, with its backup and problems. */
export async function finishDrill(q: Queryable, id: string, ok: boolean, backupId: string | null, problems: string[]): Promise<void> {
  await q.query(`UPDATE restores SET status = $2, finished_at = now(), backup_id = $3, problems = $4 WHERE id = $1`, [id, ok ? 'complete' : 'failed', backupId, JSON.stringify(problems)]);
}

/** Tenants created at least 10 s before `at` (a transaction that began just before a backup may commit after it). */
export async function countTenantsCreatedBefore(q: Queryable, at: string): Promise<number> {
  return (await q.query<{ n: number }>(`SELECT count(*)::int AS n FROM tenants WHERE created_at <= $1::timestamptz - interval '10 seconds'`, [at])).rows[0].n;
}
