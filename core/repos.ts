import type { Db } from './db';
import { NotFoundError } from './errors';
import { repoAccess, type Access, type Principal } from './principal';

export interface RepoRow {
  id: number;
  tenantId: number;
  owner: string;
  name: string;
  visibility: 'public' | 'private';
  createdAt: Date;
  /** The storage node holding it (ADR 0014); null for a repository from before nodes, not yet claimed. */
  nodeId?: string | null;
  /** Other nodes holding a replica of it (ADR 0014, `DOTGIT_REPLICA_NODES`). */
  replicaNodes?: string[];
}

export async function findRepo(db: Db, owner: string, name: string): Promise<RepoRow | undefined> {
  const r = await db.query(
    `SELECT r.id, r.tenant_id, t.name AS owner, r.name, r.visibility, r.created_at, r.node_id, r.replica_nodes
       FROM repos r JOIN tenants t ON t.id = r.tenant_id WHERE t.name = $1 AND r.name = $2`,
    [owner, name],
  );
  const row = r.rows[0];
  return row && { id: Number(row.id), tenantId: Number(row.tenant_id), owner: row.owner, name: row.name, visibility: row.visibility, createdAt: row.created_at, nodeId: row.node_id ?? null, replicaNodes: row.replica_nodes ?? [] };
}

/** The caller's effective access to a repository (role or explicit grant, capped by token scopes). */
export async function accessTo(db: Db, principal: Principal | null | undefined, repo: RepoRow): Promise<Access> {
  let grant: Access | undefined;
  if (principal) {
    const g = await db.query(`SELECT access FROM permissions WHERE tenant_id = $1 AND repo_id = $2 AND user_id = $3`, [
      repo.tenantId,
      repo.id,
      principal.userId,
    ]);
    grant = g.rows[0]?.access;
  }
  return repoAccess(principal ?? undefined, repo, grant);
}

/**
 * Finds a repository the caller may at least read. A private repository the caller cannot read is
 * reported as not found, so its existence does not leak.
 */
export async function findReadableRepo(db: Db, principal: Principal | null | undefined, owner: string, name: string) {
  const repo = await findRepo(db, owner, name);
  if (!repo) throw new NotFoundError(`repository ${owner}/${name} not found`);
  const access = await accessTo(db, principal, repo);
  if (access === 'none') throw new NotFoundError(`repository ${owner}/${name} not found`);
  return { repo, access };
}

/**
 * Joins a repository-owned table (runs, deploys) to its repository and tenant, so one query finds a
 * row and what deciding access to it needs. Use as `${repoOwnedSelect('runs')} WHERE x.id = $1`.
 */
export function repoOwnedSelect(table: string): string {
  return `SELECT x.*, t.name AS owner, p.name AS repo_name, p.visibility, p.id AS rid, p.created_at AS repo_created_at
    FROM ${table} x JOIN repos p ON p.id = x.repo_id JOIN tenants t ON t.id = x.tenant_id`;
}

/**
 * A row of `repoOwnedSelect`, if the caller may read its repository; otherwise not found under
 * `what` (so a private repository's runs and deploys do not leak their existence).
 */
export async function findReadableRepoRow(db: Db, principal: Principal | null | undefined, table: string, id: string, what: string) {
  const row = (await db.query(`${repoOwnedSelect(table)} WHERE x.id = $1`, [id])).rows[0];
  if (!row) throw new NotFoundError(`${what} ${id} not found`);
  const repo: RepoRow = { id: Number(row.rid), tenantId: Number(row.tenant_id), owner: row.owner, name: row.repo_name, visibility: row.visibility, createdAt: row.repo_created_at };
  const access = await accessTo(db, principal, repo);
  if (access === 'none') throw new NotFoundError(`${what} ${id} not found`);
  return { row, access, repo };
}
