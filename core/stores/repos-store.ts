import type { Queryable, Row } from '../db';
import { inShardScope, type ShardScope } from './shard-scope';

/**
 * The repositories aggregate's SQL (ADR 0019): repository rows, their branch
 * protections and replica status, and the join that finds a repository-owned row (a run, a deploy)
 * together with its repository and tenant.
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

/** One branch protection rule as stored. */
export interface ProtectionRow {
  pattern: string;
  allow_force_push: boolean;
  allow_deletion: boolean;
  pushers: string[] | null;
}

/** Sets the protection of a branch pattern (creating or replacing it). */
export async function upsertProtection(q: Queryable, tenantId: number, repoId: number, p: { pattern: string; allowForcePush: boolean; allowDeletion: boolean; pushers: string[] | null }): Promise<void> {
  await q.query(
    `INSERT INTO protected_branches (tenant_id, repo_id, pattern, allow_force_push, allow_deletion, pushers) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (tenant_id, repo_id, pattern) DO UPDATE SET allow_force_push = $4, allow_deletion = $5, pushers = $6, updated_at = now()`,
    [tenantId, repoId, p.pattern, p.allowForcePush, p.allowDeletion, p.pushers],
  );
}

/** A repository's branch protections, by pattern. */
export async function listProtections(q: Queryable, tenantId: number, repoId: number): Promise<ProtectionRow[]> {
  const r = await q.query('SELECT pattern, allow_force_push, allow_deletion, pushers FROM protected_branches WHERE tenant_id = $1 AND repo_id = $2 ORDER BY pattern', [tenantId, repoId]);
  return r.rows;
}

/** Removes a branch pattern's protection (nothing when there is none). */
export async function deleteProtection(q: Queryable, tenantId: number, repoId: number, pattern: string): Promise<void> {
  await q.query('DELETE FROM protected_branches WHERE tenant_id = $1 AND repo_id = $2 AND pattern = $3', [tenantId, repoId, pattern]);
}

/**
 * The repository's pushed refs fingerprint and time with each replica zone's recorded state (one
 * row per zone; a single row with a null zone when there is none).
 */
export async function listReplicaStatus(q: Queryable, tenantId: number, repoId: number): Promise<Row[]> {
  const r = await q.query(
    `SELECT rr.zone, rr.refs_fingerprint, rr.synced_at, rr.lag_seconds, rr.last_error, r.refs_fingerprint AS pushed_fingerprint, r.pushed_at
       FROM repos r LEFT JOIN repo_replicas rr ON rr.tenant_id = r.tenant_id AND rr.repo_id = r.id
      WHERE r.tenant_id = $1 AND r.id = $2`,
    [tenantId, repoId],
  );
  return r.rows;
}

/** Where a repository is (`node_id`) and which node a move fences it for (`moving_to`), by id. */
export async function findNodeState(q: Queryable, repoId: number): Promise<{ node_id: string | null; moving_to: string | null } | undefined> {
  return (await q.query(`SELECT node_id, moving_to FROM repos WHERE id = $1`, [repoId])).rows[0];
}

/** The same by owner and name, with the replica nodes. */
export async function findNodeStateByName(q: Queryable, owner: string, name: string): Promise<{ node_id: string | null; moving_to: string | null; replica_nodes: string[] | null } | undefined> {
  return (await q.query(`SELECT r.node_id, r.moving_to, r.replica_nodes FROM repos r JOIN tenants t ON t.id = r.tenant_id WHERE t.name = $1 AND r.name = $2`, [owner, name])).rows[0];
}

/** Fences writes for a move `from` → `to` (again, if this move fenced it already); false when the repository is not on `from` or another move fences it. */
export async function setMovingTo(q: Queryable, repoId: number, from: string, to: string): Promise<boolean> {
  const r = await q.query(`UPDATE repos SET moving_to = $3 WHERE id = $1 AND node_id = $2 AND (moving_to IS NULL OR moving_to = $3)`, [repoId, from, to]);
  return r.rowCount === 1;
}

/** Lifts the fence of a move to `to`. */
export async function clearMovingTo(q: Queryable, repoId: number, to: string): Promise<void> {
  await q.query(`UPDATE repos SET moving_to = NULL WHERE id = $1 AND moving_to = $2`, [repoId, to]);
}

/** The switch of a fenced move: `to` holds it (and is no longer one of its replica nodes), writes open again; false when it was not fenced for this move. */
export async function switchNode(q: Queryable, repoId: number, from: string, to: string): Promise<boolean> {
  const r = await q.query(`UPDATE repos SET node_id = $3, moving_to = NULL, replica_nodes = array_remove(replica_nodes, $3) WHERE id = $1 AND node_id = $2 AND moving_to = $3`, [
    repoId,
    from,
    to,
  ]);
  return r.rowCount === 1;
}

/** How many pushes the repository took since its last maintenance (undefined: no such repository). */
export async function pushesSinceMaintenance(q: Queryable, repoId: number): Promise<number | undefined> {
  const row = (await q.query('SELECT pushes_since_maintenance FROM repos WHERE id = $1', [repoId])).rows[0];
  return row && Number(row.pushes_since_maintenance ?? 0);
}

/** Maintenance done covering `covered` pushes; pushes that arrived meanwhile keep their count. */
export async function markMaintained(q: Queryable, repoId: number, covered: number): Promise<void> {
  await q.query(`UPDATE repos SET pushes_since_maintenance = greatest(0, pushes_since_maintenance - $2), last_maintenance_at = now() WHERE id = $1`, [repoId, covered]);
}

/** The refs fingerprint the repository's last push left (null before any). */
export async function pushedRefsFingerprint(q: Queryable, repoId: number): Promise<string | null | undefined> {
  return (await q.query<{ refs_fingerprint: string | null }>('SELECT refs_fingerprint FROM repos WHERE id = $1', [repoId])).rows[0]?.refs_fingerprint;
}

/**
 * A push on the repository's row, in one statement: one more push since the last maintenance and,
 * when given, the refs it left. Answers that count and whether the repository has replica nodes (ADR 0014).
 */
export async function countPush(q: Queryable, repoId: number, refsFingerprint?: string): Promise<{ pushesSinceMaintenance: number; hasReplicaNodes: boolean }> {
  const r = await q.query<{ pushes_since_maintenance: number; has_replica_nodes: boolean }>(
    `UPDATE repos SET pushes_since_maintenance = pushes_since_maintenance + 1,
            refs_fingerprint = coalesce($2, refs_fingerprint),
            pushed_at = CASE WHEN $2::text IS NULL THEN pushed_at ELSE now() END
      WHERE id = $1 RETURNING pushes_since_maintenance, replica_nodes <> '{}' AS has_replica_nodes`,
    [repoId, refsFingerprint ?? null],
  );
  const row = r.rows[0];
  return { pushesSinceMaintenance: Number(row?.pushes_since_maintenance ?? 0), hasReplicaNodes: row?.has_replica_nodes === true };
}

/** A repository with its tenant's name as `owner`, by tenant and id. */
export async function findRepoRowById(q: Queryable, tenantId: number, repoId: number): Promise<Row | undefined> {
  const r = await q.query(
    `SELECT r.id, r.tenant_id, t.name AS owner, r.name, r.visibility, r.created_at FROM repos r JOIN tenants t ON t.id = r.tenant_id
     WHERE r.tenant_id = $1 AND r.id = $2`,
    [tenantId, repoId],
  );
  return r.rows[0];
}

/** Every repository (id, tenant, owner, name) by id; only those on `nodeId` (or not placed yet) when given. */
export async function listRepoTargets(q: Queryable, nodeId?: string): Promise<{ id: string; tenant_id: string; owner: string; name: string }[]> {
  const r = nodeId
    ? await q.query(`SELECT r.id, r.tenant_id, t.name AS owner, r.name FROM repos r JOIN tenants t ON t.id = r.tenant_id WHERE r.node_id = $1 OR r.node_id IS NULL ORDER BY r.id`, [nodeId])
    : await q.query(`SELECT r.id, r.tenant_id, t.name AS owner, r.name FROM repos r JOIN tenants t ON t.id = r.tenant_id ORDER BY r.id`);
  return r.rows;
}

/** Whether any repository has replica nodes. */
export async function anyReplicaNodes(q: Queryable): Promise<boolean> {
  return (await q.query(`SELECT EXISTS (SELECT 1 FROM repos WHERE replica_nodes <> '{}') AS any`)).rows[0]?.any === true;
}

/**
 * Records a replica zone's state of a repository: its refs fingerprint (null: unchanged; set:
 * synced now), lag and last error (null clears it); unset values keep what was recorded.
 */
export async function upsertReplicaState(
  q: Queryable,
  s: { tenantId: number; repoId: number; zone: string; refsFingerprint: string | null; lagSeconds: number | null; error: string | null },
): Promise<void> {
  await q.query(
    `INSERT INTO repo_replicas (tenant_id, repo_id, zone, refs_fingerprint, synced_at, lag_seconds, last_error, updated_at)
     VALUES ($1, $2, $3, $4, CASE WHEN $4::text IS NULL THEN NULL ELSE now() END, $5, $6, now())
     ON CONFLICT (tenant_id, repo_id, zone) DO UPDATE SET
       refs_fingerprint = COALESCE(EXCLUDED.refs_fingerprint, repo_replicas.refs_fingerprint),
       synced_at = COALESCE(EXCLUDED.synced_at, repo_replicas.synced_at),
       lag_seconds = COALESCE(EXCLUDED.lag_seconds, repo_replicas.lag_seconds),
       last_error = EXCLUDED.last_error, updated_at = now()`,
    [s.tenantId, s.repoId, s.zone, s.refsFingerprint, s.lagSeconds, s.error],
  );
}

/**
 * A page of the repositories a caller may read, by id after `after` (`GET /api/v1/repos`): public
 * ones, every one for a platform admin, those of the caller's tenant, and those granted to the
 * caller (`permissions`), optionally only of tenant `owner`. Each row carries the caller's grant, so
 * the service applies the one access rule (core/principal `repoAccess`, token scopes included).
 */
export async function listReadableRepoRows(
  q: Queryable,
  o: { owner?: string; userId: number | null; tenantId: number | null; platformAdmin: boolean; after: number; limit: number; shards?: ShardScope },
): Promise<Row[]> {
  const r = await q.query(
    `SELECT r.id, r.tenant_id, t.name AS owner, r.name, r.visibility, r.created_at, r.node_id, r.replica_nodes, r.default_branch, p.access AS grant
       FROM repos r JOIN tenants t ON t.id = r.tenant_id
       LEFT JOIN permissions p ON p.tenant_id = r.tenant_id AND p.repo_id = r.id AND p.user_id = $3::bigint
      WHERE r.id > $1 AND ($2::text IS NULL OR t.name = $2)
        AND (r.visibility = 'public' OR $4::boolean OR r.tenant_id = $5::bigint OR p.access IS NOT NULL)
        AND ${inShardScope('$7', 'dotgit_shard_of(r.tenant_id)')}
      ORDER BY r.id LIMIT $6`,
    [o.after, o.owner ?? null, o.userId, o.platformAdmin, o.tenantId, o.limit, o.shards ?? null],
  );
  return r.rows;
}

/**
 * The repository `name` of the tenant if it was created less than `withinSeconds` ago, with who
 * created it: the actor of its `repo.create` audit entry, which the creating transaction wrote with
 * the row (ADR 0027: a resent creation). The entry is looked for among the tenant's newest audit rows
 * only (those written since the repository was), newest first.
 */
export async function findRecentRepoCreation(
  q: Queryable,
  r: { tenantId: number; name: string; target: string; withinSeconds: number },
): Promise<{ id: number; visibility: string; createdAt: Date; nodeId: string | null; replicaNodes: string[]; createdBy: string | null } | undefined> {
  const row = (
    await q.query(
      `SELECT r.id, r.visibility, r.created_at, r.node_id, r.replica_nodes,
              (SELECT a.actor FROM audit_log a
                WHERE a.tenant_id = r.tenant_id AND a.action = 'repo.create' AND a.target = $3
                  AND a.at >= date_trunc('milliseconds', r.created_at)
                ORDER BY a.id DESC LIMIT 1) AS created_by
         FROM repos r
        WHERE r.tenant_id = $1 AND r.name = $2 AND r.created_at > now() - make_interval(secs => $4)`,
      [r.tenantId, r.name, r.target, r.withinSeconds],
    )
  ).rows[0];
  if (!row) return undefined;
  return {
    id: Number(row.id),
    visibility: row.visibility,
    createdAt: row.created_at,
    nodeId: row.node_id ?? null,
    replicaNodes: row.replica_nodes ?? [],
    createdBy: row.created_by ?? null,
  };
}

/** A new repository row; a name its tenant already uses is Postgres' unique violation (23505), which the caller words. */
export async function insertRepo(
  q: Queryable,
  r: { tenantId: number; name: string; visibility: string; nodeId: string | null; replicaNodes: string[] },
): Promise<{ id: number; createdAt: Date }> {
  const row = (
    await q.query('INSERT INTO repos (tenant_id, name, visibility, node_id, replica_nodes) VALUES ($1, $2, $3, $4, $5) RETURNING id, created_at', [
      r.tenantId,
      r.name,
      r.visibility,
      r.nodeId,
      r.replicaNodes,
    ])
  ).rows[0];
  return { id: Number(row.id), createdAt: row.created_at };
}
