import type { Db } from './db';
import { NotFoundError } from './errors';
import { repoAccess, type Access, type Principal } from './principal';
import { findRepoOwnedRow, findRepoRowByName, type RepoOwnedTable } from './stores/repos-store';
import { findPermission } from './stores/tenants-store';
import { noteLogRepo } from './log-context';

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
  const row = await findRepoRowByName(db, owner, name);
  return row && { id: Number(row.id), tenantId: Number(row.tenant_id), owner: row.owner, name: row.name, visibility: row.visibility, createdAt: row.created_at, nodeId: row.node_id ?? null, replicaNodes: row.replica_nodes ?? [] };
}

/** The caller's effective access to a repository (role or explicit grant, capped by token scopes). */
export async function accessTo(db: Db, principal: Principal | null | undefined, repo: RepoRow): Promise<Access> {
  let grant: Access | undefined;
  if (principal) {
    grant = (await findPermission(db, repo.tenantId, repo.id, principal.userId)) as Access | undefined;
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
 * A run or deploy row with its repository (`repoOwnedSelect`), if the caller may read its repository; otherwise not found under
 * `what` (so a private repository's runs and deploys do not leak their existence).
 */
export async function findReadableRepoRow(db: Db, principal: Principal | null | undefined, table: RepoOwnedTable, id: string, what: string) {
  const row = await findRepoOwnedRow(db, table, id);
  if (!row) throw new NotFoundError(`${what} ${id} not found`);
  const repo: RepoRow = { id: Number(row.rid), tenantId: Number(row.tenant_id), owner: row.owner, name: row.repo_name, visibility: row.visibility, createdAt: row.repo_created_at };
  const access = await accessTo(db, principal, repo);
  if (access === 'none') throw new NotFoundError(`${what} ${id} not found`);
  noteLogRepo(`${repo.owner}/${repo.name}`); // the rest of the request's lines name it (core/log-context.ts)
  return { row, access, repo };
}
