import { promises as fs } from 'node:fs';
import type { Db, Queryable } from './db';
import { InputError, UnavailableError } from './errors';
import { repoPath } from './git';
import { acrossDatabases } from './platform-listings';
import type { ShardRouter } from './shard-router';

/**
 * Storage nodes (ADR 0014): every git-server is one, registered here with the URL the others reach
 * it at. The record in `repos.node_id`, not a hash, says where a repository lives.
 */

/** How often a node writes its heartbeat. */
export const HEARTBEAT_MS = 2_000;
export { NODE_DOWN_AFTER_SECONDS, type RepoPlacement, type StorageNode } from './stores/storage-nodes-store';
import { findNode, heartbeatNode, listNodes, listUnplacedRepos, placeUnplacedRepos, repoCountsOn, upNodeLoads, upReplicaLoads, type ShardScope, type StorageNode } from './stores/storage-nodes-store';
export { registerNode, heartbeatNode, listNodes, findNode, placementOf, replicaNodesOf, upToDateReplicaNodes, reposNeedingMaintenance, nodesHoldingRepos, reposOwnedHere, reposPlacedOn } from './stores/storage-nodes-store';

/** An up node and how many repositories it holds: what placement chooses from. */
export interface NodeLoad {
  id: string;
  repos: number;
}

/** Least-used placement: the node holding the fewest repositories, ties by id (ADR 0014). */
export function chooseNode(loads: NodeLoad[]): string | undefined {
  let best: NodeLoad | undefined;
  for (const l of loads) {
    if (!best || l.repos < best.repos || (l.repos === best.repos && l.id < best.id)) best = l;
  }
  return best?.id;
}

/**
 * A database holding repositories and the shards to count there (`null`: all of its rows). The
 * shard databases with the shards the placement puts on each (`liveDatabases`, ADR 0025), so a
 * moved shard's old copy in its grace period is not counted twice.
 */
export interface RepoDatabase {
  db: Queryable;
  shards: ShardScope;
}

/**
 * The up `candidates` (other than `holder`) and their repository counts summed over `repoDbs`, the
 * databases holding repositories (every shard database, ADR 0025); nodes from `db` (global).
 */
async function loadsAcross(db: Queryable, repoDbs: RepoDatabase[], candidates: string[], which: 'held' | 'any', holder?: string): Promise<NodeLoad[]> {
  const up = (await listNodes(db)).filter((n) => n.up && candidates.includes(n.id) && n.id !== holder).map((n) => n.id);
  const loads = new Map(up.map((id) => [id, 0]));
  for (const counts of await Promise.all(repoDbs.map((d) => repoCountsOn(d.db, up, d.shards)))) {
    for (const c of counts) loads.set(c.id, (loads.get(c.id) ?? 0) + c[which]);
  }
  return [...loads].map(([id, repos]) => ({ id, repos }));
}

/** One database holds nodes and repositories alike: the counts are one join there. */
const oneDatabase = (db: Queryable, repoDbs: RepoDatabase[]) => repoDbs.length === 1 && repoDbs[0].db === db && repoDbs[0].shards === null;

/**
 * The node a new repository goes to: of the `candidates` (the nodes the caller's installation is
 * configured with) that are up, the one holding the fewest repositories. A git-server that merely
 * registered (another installation's zone server, a test's own) is never chosen unless listed.
 * `db` holds the nodes; `repoDbs` every database holding repositories (default: `db`).
 */
export async function placeRepo(db: Queryable, candidates: string[], repoDbs: RepoDatabase[] = [{ db, shards: null }]): Promise<string> {
  const chosen = chooseNode(oneDatabase(db, repoDbs) ? await upNodeLoads(db, candidates) : await loadsAcross(db, repoDbs, candidates, 'held'));
  if (!chosen) {
    throw new UnavailableError(
      candidates.length === 0 ? 'no storage node answers; repositories cannot be created now' : `no storage node is up (of ${candidates.join(', ')}); repositories cannot be created now`,
      10,
    );
  }
  return chosen;
}

/**
 * Replica nodes (ADR 0014, `DOTGIT_REPLICA_NODES`): up to `count` of the up `candidates` other than
 * the holder, least-used first (repositories held plus replicas held, ties by id). Fewer when fewer
 * are up: a repository is never refused for want of replicas.
 */
export async function placeReplicas(db: Queryable, candidates: string[], holder: string, count: number, repoDbs: RepoDatabase[] = [{ db, shards: null }]): Promise<string[]> {
  if (count <= 0) return [];
  const loads: NodeLoad[] = oneDatabase(db, repoDbs) ? await upReplicaLoads(db, candidates, holder) : await loadsAcross(db, repoDbs, candidates, 'any', holder);
  const chosen: string[] = [];
  while (chosen.length < count) {
    const next = chooseNode(loads.filter((l) => !chosen.includes(l.id)));
    if (!next) break;
    chosen.push(next);
  }
  return chosen;
}

/** The `repo_replicas` zone under which a replica node's copy is recorded (`:` is never in a configured zone's name). */
export const nodeZone = (id: string) => `node:${id}`;

/** Checks a node id someone named: it must be registered. */
export async function assertNodeRegistered(db: Queryable, id: string): Promise<StorageNode> {
  const node = await findNode(db, id);
  if (!node) throw new InputError(`storage node ${JSON.stringify(id.slice(0, 100))} is not registered`);
  return node;
}

/**
 * Repositories from before nodes (`node_id` NULL) whose bare repository is on this node's disk
 * become this node's, in every database of the shard map (ADR 0025; each for the shards the live
 * placement puts on it). Each is claimed only while still unplaced, so of two nodes that both hold
 * a copy the first wins and the other changes nothing. Returns the names claimed.
 */
export async function claimUnplacedRepos(router: ShardRouter, nodeId: string, reposDir: string): Promise<string[]> {
  const claimed = await acrossDatabases(router, async (db, shards) => {
    const found: Array<{ id: string; owner: string; name: string }> = [];
    for (const repo of await listUnplacedRepos(db, shards)) {
      const onDisk = await fs.stat(repoPath(reposDir, repo.owner, repo.name)).then((s) => s.isDirectory(), () => false);
      if (onDisk) found.push(repo);
    }
    if (found.length === 0) return [];
    const placed = new Set(await placeUnplacedRepos(db, nodeId, found.map((f) => f.id)));
    return found.filter((f) => placed.has(String(f.id))).map((f) => `${f.owner}/${f.name}`);
  });
  return claimed.flat();
}

/**
 * Heartbeats every HEARTBEAT_MS until the returned stop is called. A failed beat (Postgres away) is
 * logged and the next one tried: others see the node down only after NODE_DOWN_AFTER_SECONDS.
 */
export function startHeartbeat(db: Db, id: string, url: string, onError: (err: unknown) => void): () => void {
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    heartbeatNode(db, id, url)
      .catch(onError)
      .finally(() => (busy = false));
  }, HEARTBEAT_MS);
  timer.unref();
  return () => clearInterval(timer);
}

