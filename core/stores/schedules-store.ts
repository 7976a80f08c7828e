import type { Queryable } from '../db';

/**
 * The SQL of scheduled pipelines (migration 0034): `repo_schedules`, each repository's cron entries
 * as its default branch's pipeline file last declared them, and `schedule_outbox`, the rows the
 * git-server's relay turns into Temporal Schedules (core/pipeline-schedules.ts).
 */

export interface RepoSchedules {
  tenantId: number;
  repoId: number;
  owner: string;
  repo: string;
  ref: string;
  commit: string;
  crons: string[];
}

/** Records what the default branch's file now declares and queues a sync, in the push's transaction. */
export async function recordRepoSchedules(q: Queryable, s: RepoSchedules): Promise<void> {
  await q.query(
    `INSERT INTO repo_schedules (tenant_id, repo_id, owner, repo_name, ref, commit_sha, crons) VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (tenant_id, repo_id) DO UPDATE SET owner = $3, repo_name = $4, ref = $5, commit_sha = $6, crons = $7, updated_at = now()`,
    [s.tenantId, s.repoId, s.owner, s.repo, s.ref, s.commit, JSON.stringify(s.crons)],
  );
  await q.query(`INSERT INTO schedule_outbox (tenant_id, repo_id, payload) VALUES ($1, $2, $3)`, [s.tenantId, s.repoId, JSON.stringify({ tenantId: s.tenantId, repoId: s.repoId })]);
}

/** A repository's recorded schedules (the latest push's), or undefined when none were ever recorded. */
export async function findRepoSchedules(q: Queryable, tenantId: number, repoId: number): Promise<RepoSchedules | undefined> {
  const r = await q.query(`SELECT owner, repo_name, ref, commit_sha, crons FROM repo_schedules WHERE tenant_id = $1 AND repo_id = $2`, [tenantId, repoId]);
  const row = r.rows[0] as { owner: string; repo_name: string; ref: string; commit_sha: string; crons: string[] } | undefined;
  return row ? { tenantId, repoId, owner: row.owner, repo: row.repo_name, ref: row.ref, commit: row.commit_sha, crons: row.crons } : undefined;
}
