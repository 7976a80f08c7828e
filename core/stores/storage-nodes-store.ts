import type { Queryable } from '../db';
import { inShardScope, type ShardScope } from './shard-scope';

/**
 * The SQL of `storage_nodes` and of where repositories are placed on them (ADR 0014); the placement
 * logic (choosing nodes, claiming repositories found on disk, heartbeats) is core/storage-nodes.ts.
 */

/** A node whose heartbeat is older than this is down. */
export const NODE_DOWN_AFTER_SECONDS = 10;

export interface StorageNode {
  id: string;
  url: string;
  up: boolean;
}

/** Where requests for a repository go: its node (undefined for a repository from before nodes). */
export interface RepoPlacement {
  nodeId: string | undefined;
  node: StorageNode | undefined;
}

/** SQL: the node's heartbeat is recent enough for it to count as up. */
const UP = `heartbeat_at > now() - make_interval(secs => ${NODE_DOWN_AFTER_SECONDS})`;

/**
 * Registers the node (or takes its row over after a restart: same id, maybe a new URL) and beats
 * once. Answers the URL another live process was heartbeating under this id, if any: two processes
 * sharing a node id (one data dir, or one DOTGIT_NODE_ID) must hold the same disk.
 */
export async function registerNode(db: Queryable, id: string, url: string): Promise<{ sharedWith?: string }> {
  const before = (await db.query(`SELECT url, ${UP} AS up FROM storage_nodes WHERE id = $1`, [id])).rows[0];
  await db.query(
    `INSERT INTO storage_nodes (id, url, heartbeat_at, started_at) VALUES ($1, $2, now(), now())
     ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url, heartbeat_at = now(), started_at = now()`,
    [id, url],
  );
  return before?.up && before.url !== url ? { sharedWith: before.url } : {};
}

/** One heartbeat. The URL is written again, so a node whose row another process overwrote reclaims it. */
export async function heartbeatNode(db: Queryable, id: string, url: string): Promise<void> {
  await db.query(
    `INSERT INTO storage_nodes (id, url, heartbeat_at, started_at) VALUES ($1, $2, now(), now())
     ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url, heartbeat_at = now()`,
    [id, url],
  );
}

/** Every registered node, with whether it is up. */
export async function listNodes(db: Queryable): Promise<StorageNode[]> {
  const r = await db.query(`SELECT id, url, ${UP} AS up FROM storage_nodes ORDER BY id`);
  return r.rows.map((row) => ({ id: row.id, url: row.url, up: row.up }));
}

/** The node with this id, or undefined when no such node is registered. */
export async function findNode(db: Queryable, id: string): Promise<StorageNode | undefined> {
  const row = (await db.query(`SELECT id, url, ${UP} AS up FROM storage_nodes WHERE id = $1`, [id])).rows[0];
  return row && { id: row.id, url: row.url, up: row.up };
}

/**
 * Where a repository lives; undefined when there is no such repository. `db` holds the repository
 * (its tenant's shard), `nodesDb` the storage nodes (the global database, ADR 0025): on one
 * database, one join; on two, the node is read from `nodesDb` (a node missing there reads as none).
 */
export async function placementOf(db: Queryable, owner: string, name: string, nodesDb: Queryable = db): Promise<RepoPlacement | undefined> {
  if (nodesDb !== db) {
    const placed = (await db.query(`SELECT r.node_id FROM repos r JOIN tenants t ON t.id = r.tenant_id WHERE t.name = $1 AND r.name = $2`, [owner, name])).rows[0];
    if (!placed) return undefined;
    const node = placed.node_id ? await findNode(nodesDb, placed.node_id) : undefined;
    return { nodeId: placed.node_id ?? undefined, node };
  }
  const r = await db.query(
    `SELECT r.node_id, n.url, n.${UP} AS up
       FROM repos r JOIN tenants t ON t.id = r.tenant_id LEFT JOIN storage_nodes n ON n.id = r.node_id
      WHERE t.name = $1 AND r.name = $2`,
    [owner, name],
  );
  const row = r.rows[0];
  if (!row) return undefined;
  return { nodeId: row.node_id ?? undefined, node: row.node_id ? { id: row.node_id, url: row.url, up: row.up } : undefined };
}

/**
 * A repository's replica nodes, with where they are and whether they are up. `db` holds the
 * repository (its tenant's shard), `nodesDb` the storage nodes (the global database, ADR 0025).
 */
export async function replicaNodesOf(db: Queryable, repoId: number, nodesDb: Queryable = db): Promise<StorageNode[]> {
  if (nodesDb !== db) {
    const ids = (await db.query(`SELECT replica_nodes FROM repos WHERE id = $1`, [repoId])).rows[0]?.replica_nodes as string[] | undefined;
    return ids?.length ? (await listNodes(nodesDb)).filter((n) => ids.includes(n.id)) : [];
  }
  const r = await db.query(
    `SELECT n.id, n.url, n.${UP} AS up FROM repos r JOIN storage_nodes n ON n.id = ANY(r.replica_nodes) WHERE r.id = $1 ORDER BY n.id`,
    [repoId],
  );
  return r.rows.map((row) => ({ id: row.id, url: row.url, up: row.up }));
}

/**
 * The replica nodes whose recorded copy holds exactly the refs the last push left (its fingerprint
 * equals `repos.refs_fingerprint`): only these may serve a read while the holder is down.
 */
export async function upToDateReplicaNodes(db: Queryable, repoId: number, nodesDb: Queryable = db): Promise<StorageNode[]> {
  if (nodesDb !== db) {
    // The repository and its replicas' state on its shard, the nodes on the global database.
    const ids = await db.query(
      `SELECT rr.zone FROM repos r JOIN repo_replicas rr ON rr.tenant_id = r.tenant_id AND rr.repo_id = r.id
        WHERE r.id = $1 AND r.refs_fingerprint IS NOT NULL AND rr.refs_fingerprint = r.refs_fingerprint AND rr.zone LIKE 'node:%'
          AND substr(rr.zone, 6) = ANY(r.replica_nodes)`,
      [repoId],
    );
    const wanted = new Set(ids.rows.map((row) => (row.zone as string).slice('node:'.length)));
    return (await listNodes(nodesDb)).filter((n) => wanted.has(n.id));
  }
  const r = await db.query(
    `SELECT n.id, n.url, n.${UP} AS up
       FROM repos r
       JOIN storage_nodes n ON n.id = ANY(r.replica_nodes)
       JOIN repo_replicas rr ON rr.tenant_id = r.tenant_id AND rr.repo_id = r.id AND rr.zone = 'node:' || n.id
      WHERE r.id = $1 AND r.refs_fingerprint IS NOT NULL AND rr.refs_fingerprint = r.refs_fingerprint
      ORDER BY n.id`,
    [repoId],
  );
  return r.rows.map((row) => ({ id: row.id, url: row.url, up: row.up }));
}

export type { ShardScope } from './shard-scope';

/** SQL: the repository row (alias `r` unless named) is in the scope's shards (`$n` an int[] or NULL for every row). */
const inScope = (param: string, alias = 'r') => inShardScope(param, `dotgit_shard_of(${alias}.tenant_id)`);

/**
 * Repositories with pushes since their last repack, most first, whose storage node is up (or that
 * have none yet): a repack waits for the worker beside the node, so one down node must not hold up
 * the sweep; its repositories keep their counts for a later sweep. With `across` (a database of
 * several, ADR 0025): only the rows of its `shards`, and the up nodes named (read from the global
 * database: a shard database's `storage_nodes` is empty); each row carries its count to merge by.
 */
export async function reposNeedingMaintenance(
  db: Queryable,
  limit: number,
  across?: { shards: ShardScope; upNodes: string[] },
): Promise<Array<{ tenantId: number; tenant: string; repoId: number; repo: string; node?: string; pushes: number }>> {
  const r = across
    ? await db.query(
        `SELECT r.tenant_id, t.name AS tenant, r.id, r.name, r.node_id, r.pushes_since_maintenance AS pushes FROM repos r JOIN tenants t ON t.id = r.tenant_id
          WHERE r.pushes_since_maintenance > 0 AND (r.node_id IS NULL OR r.node_id = ANY($2::text[])) AND ${inScope('$3')}
          ORDER BY r.pushes_since_maintenance DESC, r.id LIMIT $1`,
        [limit, across.upNodes, across.shards],
      )
    : await db.query(
        `SELECT r.tenant_id, t.name AS tenant, r.id, r.name, r.node_id, r.pushes_since_maintenance AS pushes FROM repos r JOIN tenants t ON t.id = r.tenant_id
          WHERE r.pushes_since_maintenance > 0
            AND (r.node_id IS NULL OR EXISTS (SELECT 1 FROM storage_nodes n WHERE n.id = r.node_id AND n.${UP}))
          ORDER BY r.pushes_since_maintenance DESC LIMIT $1`,
        [limit],
      );
  return r.rows.map((row) => ({ tenantId: Number(row.tenant_id), tenant: row.tenant, repoId: Number(row.id), repo: row.name, ...(row.node_id ? { node: row.node_id } : {}), pushes: Number(row.pushes) }));
}

/** The node ids holding at least one repository of the scope's shards in this database. */
export async function nodeIdsHoldingRepos(db: Queryable, shards: ShardScope): Promise<string[]> {
  const r = await db.query(`SELECT DISTINCT r.node_id FROM repos r WHERE r.node_id IS NOT NULL AND ${inScope('$1')} ORDER BY r.node_id`, [shards]);
  return r.rows.map((row) => row.node_id as string);
}

/**
 * The nodes whose repositories whole-platform walks (backups, the drill, replica reconciliation)
 * run beside (ADR 0014): every node holding a repository, up or down. Empty when no repository is
 * placed on a node (no nodes registered, or only repositories from before nodes): the caller then
 * walks the orchestration worker's disk as before nodes.
 */
export async function nodesHoldingRepos(db: Queryable): Promise<{ up: string[]; down: string[] }> {
  const r = await db.query(
    `SELECT n.id, n.${UP} AS up FROM storage_nodes n WHERE EXISTS (SELECT 1 FROM repos r WHERE r.node_id = n.id) ORDER BY n.id`,
  );
  return { up: r.rows.filter((row) => row.up).map((row) => row.id), down: r.rows.filter((row) => !row.up).map((row) => row.id) };
}

/**
 * Of the repository directories found on node `nodeId`'s disk (`owner/name`), those that are its
 * own: placed on it, or on no node (from before nodes), or unknown to Postgres (a directory made
 * behind dotgit's back is backed up as before nodes). A copy placed on another node (a replica
 * node's copy, a moved repository's old copy in its grace period) belongs to that node's walk.
 */
export async function reposOwnedHere(db: Queryable, nodeId: string, names: string[]): Promise<string[]> {
  const placed = await repoNodesByName(db, names, null);
  return names.filter((n) => {
    const node = placed.get(n);
    return node === undefined || node === null || node === nodeId;
  });
}

/** `owner/name` → node id (null: on no node) of those of `names` that this database holds in the scope's shards. */
export async function repoNodesByName(db: Queryable, names: string[], shards: ShardScope): Promise<Map<string, string | null>> {
  if (names.length === 0) return new Map();
  const r = await db.query(
    `SELECT t.name || '/' || r.name AS full_name, r.node_id FROM repos r JOIN tenants t ON t.id = r.tenant_id
      WHERE t.name || '/' || r.name = ANY($1::text[]) AND ${inScope('$2')}`,
    [names, shards],
  );
  return new Map(r.rows.map((row) => [row.full_name as string, (row.node_id as string | null) ?? null]));
}

/** `owner/name` → node id of the repositories placed on one of `nodes` (of the scope's shards). */
export async function reposPlacedOn(db: Queryable, nodes: string[], shards: ShardScope = null): Promise<Map<string, string>> {
  if (nodes.length === 0) return new Map();
  const r = await db.query(
    `SELECT t.name || '/' || r.name AS full_name, r.node_id FROM repos r JOIN tenants t ON t.id = r.tenant_id WHERE r.node_id = ANY($1::text[]) AND ${inScope('$2')}`,
    [nodes, shards],
  );
  return new Map(r.rows.map((row) => [row.full_name as string, row.node_id as string]));
}

/** Repositories to reconcile (every one, or those on `nodeId` or on no node), of the scope's shards, by id. */
export async function repoTargetsIn(db: Queryable, shards: ShardScope, nodeId?: string): Promise<{ id: string; tenant_id: string; owner: string; name: string }[]> {
  const r = await db.query(
    `SELECT r.id, r.tenant_id, t.name AS owner, r.name FROM repos r JOIN tenants t ON t.id = r.tenant_id
      WHERE ($2::text IS NULL OR r.node_id = $2 OR r.node_id IS NULL) AND ${inScope('$1')} ORDER BY r.id`,
    [shards, nodeId ?? null],
  );
  return r.rows;
}

/** Whether a repository of the scope's shards has replica nodes. */
export async function anyReplicaNodesIn(db: Queryable, shards: ShardScope): Promise<boolean> {
  return (await db.query(`SELECT EXISTS (SELECT 1 FROM repos r WHERE r.replica_nodes <> '{}' AND ${inScope('$1')}) AS any`, [shards])).rows[0]?.any === true;
}

/** Of the `candidates`, the up nodes and how many repositories each holds. */
export async function upNodeLoads(q: Queryable, candidates: string[]): Promise<{ id: string; repos: number }[]> {
  const r = await q.query(
    `SELECT n.id, count(r.id)::int AS repos
       FROM storage_nodes n LEFT JOIN repos r ON r.node_id = n.id
      WHERE n.id = ANY($1::text[]) AND n.${UP}
      GROUP BY n.id`,
    [candidates],
  );
  return r.rows.map((row) => ({ id: row.id, repos: row.repos }));
}

/**
 * How many repositories of this database each of `nodes` holds (`held`), and holds or replicates
 * (`any`): a database's share of the placement counts when repositories span several (ADR 0025),
 * of the scope's shards only (a moved shard's old copy in its grace period is not counted).
 */
export async function repoCountsOn(q: Queryable, nodes: string[], shards: ShardScope = null): Promise<{ id: string; held: number; any: number }[]> {
  if (nodes.length === 0) return [];
  const r = await q.query(
    `SELECT n AS id,
            (SELECT count(*) FROM repos r WHERE r.node_id = n AND ${inScope('$2')})::int AS held,
            (SELECT count(*) FROM repos r WHERE (r.node_id = n OR n = ANY(r.replica_nodes)) AND ${inScope('$2')})::int AS any
       FROM unnest($1::text[]) AS n`,
    [nodes, shards],
  );
  return r.rows.map((row) => ({ id: row.id, held: row.held, any: row.any }));
}

/** Of the `candidates` other than `holder`, the up nodes and how many repositories each holds or replicates. */
export async function upReplicaLoads(q: Queryable, candidates: string[], holder: string): Promise<{ id: string; repos: number }[]> {
  const r = await q.query(
    `SELECT n.id, (SELECT count(*) FROM repos r WHERE r.node_id = n.id OR n.id = ANY(r.replica_nodes))::int AS repos
       FROM storage_nodes n
      WHERE n.id = ANY($1::text[]) AND n.id <> $2 AND n.${UP}`,
    [candidates, holder],
  );
  return r.rows.map((row) => ({ id: row.id, repos: row.repos }));
}

/** Repositories placed on no node (from before nodes), of the scope's shards, by id. */
export async function listUnplacedRepos(q: Queryable, shards: ShardScope = null): Promise<{ id: string; owner: string; name: string }[]> {
  return (await q.query(`SELECT r.id, t.name AS owner, r.name FROM repos r JOIN tenants t ON t.id = r.tenant_id WHERE r.node_id IS NULL AND ${inScope('$1')} ORDER BY r.id`, [shards])).rows;
}

/** Places the still unplaced of these repositories on `nodeId`; answers the ids it placed. */
export async function placeUnplacedRepos(q: Queryable, nodeId: string, repoIds: string[]): Promise<string[]> {
  const r = await q.query(`UPDATE repos SET node_id = $1 WHERE id = ANY($2::bigint[]) AND node_id IS NULL RETURNING id`, [nodeId, repoIds]);
  return r.rows.map((row) => String(row.id));
}
