import type { Queryable } from '../db';

/** A commit's latest run, as a commit list shows it (ADR 0034). */
export interface LatestRun {
  id: string;
  status: string;
  ref: string;
  attempt: number;
  createdAt: Date;
}

/**
 * The latest run (by creation) of each of these commits of one repository: what the repository
 * browser's commit list shows beside each commit. Commits without runs are absent from the map.
 */
export async function latestRunsOfCommits(q: Queryable, tenantId: number, repoId: number, shas: string[]): Promise<Map<string, LatestRun>> {
  const found = new Map<string, LatestRun>();
  if (shas.length === 0) return found;
  const r = await q.query(
    `SELECT DISTINCT ON (commit_sha) commit_sha, id, status, ref, attempt, created_at FROM runs
      WHERE tenant_id = $1 AND repo_id = $2 AND commit_sha = ANY($3::text[])
      ORDER BY commit_sha, created_at DESC, id DESC`,
    [tenantId, repoId, shas],
  );
  for (const row of r.rows) found.set(row.commit_sha, { id: row.id, status: row.status, ref: row.ref, attempt: Number(row.attempt ?? 1), createdAt: row.created_at });
  return found;
}
