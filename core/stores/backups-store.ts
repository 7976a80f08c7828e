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

/** A restore started through the api, `running`, to the time `at`. */
export async function insertApiRestore(q: Queryable, id: string, at: Date): Promise<void> {
  await q.query(`INSERT INTO restores (id, kind, at, status) VALUES ($1, 'restore', $2, 'running')`, [id, at]);
}

/** A restore that failed (or never started), with its problems. */
export async function failRestore(q: Queryable, id: string, problems: string[]): Promise<void> {
  await q.query(`UPDATE restores SET status = 'failed', finished_at = now(), problems = $2 WHERE id = $1`, [id, JSON.stringify(problems)]);
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
