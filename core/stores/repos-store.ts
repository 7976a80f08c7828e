import type { Queryable, Row } from '../db';

/**
 * The repositories aggregate's SQL (docs/decisions, "data layer"): repository rows, explicit permissions, and the join
 * that finds a repository-owned row (a run, a deploy) together with its repository and tenant.
 */

/** A repository with its tenant's name as `owner`, by owner and name. */
export async function findRepoRowByName(q: Queryable, owner: string, name: string): Promise<Row | undefined> {
  const r = await q.query(
    `SELECT r.id, r.tenant_id, t.name AS owner, r.name, r.visibility, r.created_at, r.node_id, r.replica_nodes
       FROM repos r JOIN tenants t ON t.id = r.tenant_id WHERE t.name = $1 AND r.name = $2`,
    [owner, name],
  );
  return r.rows[0];
}

/** A user's explicit grant on a repository (`permissions.access`), if any. */
export async function findPermission(q: Queryable, tenantId: number, repoId: number, userId: number): Promise<string | undefined> {
  const g = await q.query(`SELECT access FROM permissions WHERE tenant_id = $1 AND repo_id = $2 AND user_id = $3`, [tenantId, repoId, userId]);
  return g.rows[0]?.access;
}

/** The repository-owned tables `repoOwnedSelect` joins. */
export type RepoOwnedTable = 'runs' | 'deploys';

/**
 * Joins a repository-owned table to its repository and tenant, so one query finds a row and what
 * deciding access to it needs (`owner`, `repo_name`, `visibility`, `rid`, `repo_created_at`).
 * The row's own columns are under `x.`.
 */
export function repoOwnedSelect(table: RepoOwnedTable): string {
  return `SELECT x.*, t.name AS owner, p.name AS repo_name, p.visibility, p.id AS rid, p.created_at AS repo_created_at
    FROM ${table} x JOIN repos p ON p.id = x.repo_id JOIN tenants t ON t.id = x.tenant_id`;
}

/** One row of `repoOwnedSelect(table)` by its id. */
export async function findRepoOwnedRow(q: Queryable, table: RepoOwnedTable, id: string): Promise<Row | undefined> {
  return (await q.query(`${repoOwnedSelect(table)} WHERE x.id = $1`, [id])).rows[0];
}

/**
 * Rows of `repoOwnedSelect(table)` of one repository, newest first (at most 100), where each
 * `filters` column (a column of the table) equals its value; undefined values are left out.
 */
export async function listRepoOwnedRows(q: Queryable, table: RepoOwnedTable, repoId: number, filters: Record<string, string | undefined>): Promise<Row[]> {
  const where = ['x.repo_id = $1'];
  const args: unknown[] = [repoId];
  for (const [column, value] of Object.entries(filters)) {
    if (value === undefined) continue;
    args.push(value);
    where.push(`x.${column} = $${args.length}`);
  }
  return (await q.query(`${repoOwnedSelect(table)} WHERE ${where.join(' AND ')} ORDER BY x.created_at DESC, x.id DESC LIMIT 100`, args)).rows;
}
