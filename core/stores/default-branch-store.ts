import type { DbClient } from '../db';

/**
 * A repository's default branch as recorded beside its row (`repos.default_branch`, migration 0021).
 * HEAD on the storage node is what git serves; the git-server writes this copy whenever it changes
 * HEAD, so the api can answer it without asking the node.
 */

type Queryable = Pick<DbClient, 'query'>;

/** The recorded default branch of a repository ('main' until a first push or a change says otherwise). */
export async function findDefaultBranch(q: Queryable, repoId: number): Promise<string | undefined> {
  const r = await q.query('SELECT default_branch FROM repos WHERE id = $1', [repoId]);
  return r.rows[0]?.default_branch;
}

/** Records the branch HEAD now names. */
export async function recordDefaultBranch(q: Queryable, repoId: number, branch: string): Promise<void> {
  await q.query('UPDATE repos SET default_branch = $2 WHERE id = $1', [repoId, branch]);
}
