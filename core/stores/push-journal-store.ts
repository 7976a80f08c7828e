import type { Queryable } from '../db';

/**
 * The SQL of `push_journal` (docs/decisions/0011-push-durability.md). A journaled ref update moves
 * prepared -> committed | aborted, and prepared | committed -> done (recorded with its runs) or
 * aborted (reconciliation found it never landed).
 */

export interface JournalRow {
  ref: string;
  status: string;
  run_ids: string[];
}

/** A push with journal rows still open (prepared or committed), with its tenant and repository names. */
export interface OpenPush {
  tenant_id: string;
  push_id: string;
  repo_id: string;
  tenant: string;
  repo: string;
}

/** One open journal row of a push. */
export interface OpenJournalRow {
  id: string;
  ref: string;
  old_sha: string;
  new_sha: string;
  actor: string;
  push_options: string[];
  status: string;
}

/** Journals a push's updates `prepared` (again, while they are prepared or aborted: a retried hook). */
export async function insertPreparedUpdates(
  q: Queryable,
  p: { tenantId: number; repoId: number; pushId: string; actor: string; pushOptions: string[]; instance: string; updates: { ref: string; oldSha: string; newSha: string }[] },
): Promise<void> {
  await q.query(
    `INSERT INTO push_journal (tenant_id, repo_id, push_id, ref, old_sha, new_sha, actor, push_options, instance)
     SELECT $1, $2, $3, u.ref, u.old_sha, u.new_sha, $4, $5, $6
       FROM unnest($7::text[], $8::text[], $9::text[]) AS u(ref, old_sha, new_sha)
     ON CONFLICT (tenant_id, push_id, ref) DO UPDATE SET old_sha = EXCLUDED.old_sha, new_sha = EXCLUDED.new_sha
       WHERE push_journal.status IN ('prepared', 'aborted')`,
    [
      p.tenantId,
      p.repoId,
      p.pushId,
      p.actor,
      JSON.stringify(p.pushOptions),
      p.instance,
      p.updates.map((u) => u.ref),
      p.updates.map((u) => u.oldSha),
      p.updates.map((u) => u.newSha),
    ],
  );
}

/** Prepared updates of `refs` that git aborted become `aborted`. */
export async function abortPreparedUpdates(q: Queryable, tenantId: number, pushId: string, refs: string[]): Promise<void> {
  await q.query(`UPDATE push_journal SET status = 'aborted' WHERE tenant_id = $1 AND push_id = $2 AND ref = ANY($3::text[]) AND status = 'prepared'`, [tenantId, pushId, refs]);
}

/** Locks the push's rows of `refs` (FOR UPDATE, in ref order) and answers them. */
export async function lockJournalRows(q: Queryable, tenantId: number, pushId: string, refs: string[]): Promise<JournalRow[]> {
  const r = await q.query<JournalRow>(`SELECT ref, status, run_ids FROM push_journal WHERE tenant_id = $1 AND push_id = $2 AND ref = ANY($3::text[]) ORDER BY ref FOR UPDATE`, [
    tenantId,
    pushId,
    refs,
  ]);
  return r.rows;
}

/** A ref update is recorded: `done`, with the runs it started. */
export async function markJournalDone(q: Queryable, tenantId: number, pushId: string, ref: string, runIds: string[]): Promise<void> {
  await q.query(`UPDATE push_journal SET status = 'done', run_ids = $4, finished_at = now() WHERE tenant_id = $1 AND push_id = $2 AND ref = $3`, [tenantId, pushId, ref, runIds]);
}

/** Updates that never landed: `aborted`; answers how many rows changed. */
export async function abortJournalRows(q: Queryable, tenantId: number, pushId: string, refs: string[]): Promise<number> {
  const r = await q.query(`UPDATE push_journal SET status = 'aborted', finished_at = now() WHERE tenant_id = $1 AND push_id = $2 AND ref = ANY($3::text[])`, [tenantId, pushId, refs]);
  return r.rowCount ?? 0;
}

/**
 * Pushes with open rows older than `graceMs`, or written by `ownRowsBefore.instance` before that
 * time; of one repository when `repoId` is given; only of repositories on `nodeId` (or unplaced) when given.
 */
export async function listOpenPushes(
  q: Queryable,
  s: { graceMs: number; instance: string | null; before: Date | null; repoId: number | null; nodeId: string | null },
): Promise<OpenPush[]> {
  const r = await q.query<OpenPush>(
    `SELECT DISTINCT j.tenant_id, j.push_id, j.repo_id, t.name AS tenant, r.name AS repo
       FROM push_journal j JOIN repos r ON r.id = j.repo_id JOIN tenants t ON t.id = r.tenant_id
      WHERE j.status IN ('prepared', 'committed')
        AND (j.created_at < now() - make_interval(secs => $1::double precision / 1000)
             OR (j.instance = $2 AND j.created_at < $3))
        AND ($4::bigint IS NULL OR j.repo_id = $4)
        AND ($5::text IS NULL OR r.node_id IS NULL OR r.node_id = $5)`,
    [s.graceMs, s.instance, s.before, s.repoId, s.nodeId],
  );
  return r.rows;
}

/** A push's open (prepared or committed) rows. */
export async function listOpenJournalRows(q: Queryable, tenantId: number, pushId: string): Promise<OpenJournalRow[]> {
  const r = await q.query<OpenJournalRow>(
    `SELECT id, ref, old_sha, new_sha, actor, push_options, status FROM push_journal WHERE tenant_id = $1 AND push_id = $2 AND status IN ('prepared', 'committed')`,
    [tenantId, pushId],
  );
  return r.rows;
}

/** Whether a later journaled (not aborted) update of the ref started from `sha`. */
export async function laterUpdateFrom(q: Queryable, repoId: number, ref: string, afterId: string, sha: string): Promise<boolean> {
  const later = await q.query(`SELECT 1 FROM push_journal WHERE repo_id = $1 AND ref = $2 AND id > $3 AND old_sha = $4 AND status <> 'aborted' LIMIT 1`, [repoId, ref, afterId, sha]);
  return (later.rowCount ?? 0) > 0;
}

/** Deletes finished (done or aborted) rows older than `days`; answers how many. */
export async function pruneFinishedJournal(q: Queryable, days: number): Promise<number> {
  const r = await q.query(`DELETE FROM push_journal WHERE status IN ('done', 'aborted') AND created_at < now() - make_interval(days => $1)`, [days]);
  return r.rowCount ?? 0;
}
