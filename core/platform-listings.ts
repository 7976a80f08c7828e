import type { Db } from './db';
import type { RepoTarget } from './run-types';
import type { ShardRouter } from './shard-router';
import { liveDatabases } from './shard-databases';
import {
  anyReplicaNodesIn,
  listNodes,
  nodeIdsHoldingRepos,
  repoNodesByName,
  reposNeedingMaintenance,
  reposPlacedOn,
  repoTargetsIn,
  type ShardScope,
} from './stores/storage-nodes-store';

/**
 * Platform-wide repository listings (ADR 0025): the maintenance sweep, the replica reconciliation,
 * backups and drills, and a git-server's start-up claim walk every repository, whichever database
 * its tenant's shard is on. Each reads every database of the shard map in parallel, each for the
 * shards the live placement (`shard_placements`, re-read first) puts on it: during a shard move's
 * grace period (ADR 0026) the moved shard's rows are in the source and the target until the
 * clean-up, and only the target's count. Storage nodes are read from the global database.
 */

/** `fn` on every database holding shards now (placement re-read first), each for its shards (`null`: all of its rows), in parallel. */
export async function acrossDatabases<T>(router: ShardRouter, fn: (db: Db, shards: ShardScope) => Promise<T>): Promise<T[]> {
  await router.refresh();
  return Promise.all(liveDatabases(router).map((d) => fn(d.db, d.scope)));
}

/** Repositories with pushes since their last repack on an up node (or none), most pushes first, at most `limit`. */
export async function reposNeedingMaintenanceEverywhere(router: ShardRouter, limit: number): Promise<RepoTarget[]> {
  const upNodes = (await listNodes(router.global)).filter((n) => n.up).map((n) => n.id);
  const rows = (await acrossDatabases(router, (db, shards) => reposNeedingMaintenance(db, limit, { shards, upNodes }))).flat();
  return rows
    .sort((a, b) => b.pushes - a.pushes || a.repoId - b.repoId)
    .slice(0, limit)
    .map(({ pushes: _pushes, ...target }) => target);
}

/**
 * The nodes whose repositories whole-platform walks (backups, drills, replica reconciliation) run
 * beside (ADR 0014): every node holding a repository in any database, up or down. Empty when no
 * repository is on a node: the caller walks the orchestration worker's disk, as before nodes.
 */
export async function nodesHoldingReposEverywhere(router: ShardRouter): Promise<{ up: string[]; down: string[] }> {
  const [nodes, holding] = await Promise.all([listNodes(router.global), acrossDatabases(router, (db, shards) => nodeIdsHoldingRepos(db, shards))]);
  const held = new Set(holding.flat());
  const known = nodes.filter((n) => held.has(n.id));
  return { up: known.filter((n) => n.up).map((n) => n.id), down: known.filter((n) => !n.up).map((n) => n.id) };
}

/**
 * Of the repository directories found on node `nodeId`'s disk (`owner/name`), those that are its
 * own: placed on it, or on no node (from before nodes), or unknown to every database (a directory
 * made behind dotgit's back is backed up as before nodes). A copy placed on another node belongs to
 * that node's walk.
 */
export async function reposOwnedHereEverywhere(router: ShardRouter, nodeId: string, names: string[]): Promise<string[]> {
  if (names.length === 0) return [];
  const placed = new Map<string, string | null>();
  for (const m of await acrossDatabases(router, (db, shards) => repoNodesByName(db, names, shards))) for (const [k, v] of m) placed.set(k, v);
  return names.filter((n) => {
    const node = placed.get(n);
    return node === undefined || node === null || node === nodeId;
  });
}

/** `owner/name` → node id of the repositories placed on one of `nodes`, in every database. */
export async function reposPlacedOnEverywhere(router: ShardRouter, nodes: string[]): Promise<Map<string, string>> {
  if (nodes.length === 0) return new Map();
  const merged = new Map<string, string>();
  for (const m of await acrossDatabases(router, (db, shards) => reposPlacedOn(db, nodes, shards))) for (const [k, v] of m) merged.set(k, v);
  return merged;
}

/** The repositories the replica reconciliation walks (all, or those on `nodeId` or on no node), each once. */
export async function repoTargetsEverywhere(router: ShardRouter, nodeId?: string): Promise<RepoTarget[]> {
  const rows = (await acrossDatabases(router, (db, shards) => repoTargetsIn(db, shards, nodeId))).flat();
  return rows.map((r) => ({ tenantId: Number(r.tenant_id), tenant: r.owner, repoId: Number(r.id), repo: r.name })).sort((a, b) => a.repoId - b.repoId);
}

/** Whether any repository, in any database, has replica nodes. */
export async function anyReplicaNodesEverywhere(router: ShardRouter): Promise<boolean> {
  return (await acrossDatabases(router, (db, shards) => anyReplicaNodesIn(db, shards))).some(Boolean);
}
