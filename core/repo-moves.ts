import type { Queryable } from './db';
import { ConflictError, UnavailableError } from './errors';
import { clearMovingTo, findNodeState, findNodeStateByName, setMovingTo, switchNode } from './stores/repos-store';

/**
 * Moving a repository between storage nodes (ADR 0014): the write fence (`repos.moving_to`) and
 * the switch of `repos.node_id`. The workflow is workflows/move.ts; these are its records.
 */

/** The move workflow's input: one repository, from the node holding it to another. */
export interface MoveInput {
  tenant: string;
  repo: string;
  repoId: number;
  from: string;
  to: string;
  /** How long the source copy stays after the switch (reads in flight there finish). */
  graceSeconds: number;
}

export interface MoveResult {
  from: string;
  to: string;
  refs: number;
  sourceRemoved: boolean;
}

/** Refs of a repository, name to object id: what must be equal on both nodes before the switch. */
export type RefMap = Record<string, string>;

/** One move per repository at a time: a second start while one runs is refused. */
export function moveWorkflowId(tenant: string, repo: string): string {
  return `move:${tenant}:${repo}`;
}

/** The service name of the tokens a move's calls carry (the activities' to the nodes, the target's fetches). */
export const MOVE_SERVICE = 'repo-move';

/** Seconds a refused push is told to wait while its repository is fenced. */
export const FENCED_RETRY_AFTER_SECONDS = 2;

/** Where a repository is and whether a move fences it, by id. */
export async function moveStateOf(db: Queryable, repoId: number): Promise<{ nodeId: string | null; movingTo: string | null } | undefined> {
  const row = await findNodeState(db, repoId);
  return row && { nodeId: row.node_id ?? null, movingTo: row.moving_to ?? null };
}

/** The same by name, with the replica nodes (a node asked to drop its copy knows only the name). */
export async function moveStateByName(db: Queryable, owner: string, name: string): Promise<{ nodeId: string | null; movingTo: string | null; replicaNodes: string[] } | undefined> {
  const row = await findNodeStateByName(db, owner, name);
  return row && { nodeId: row.node_id ?? null, movingTo: row.moving_to ?? null, replicaNodes: row.replica_nodes ?? [] };
}

/**
 * Refuses a write unless the repository is this node's and no move fences it. Called by the
 * holding node under the repository's write lock, so a push that got the lock before the fence
 * finishes before the move's barrier does, and one after it sees the fence (or the new node).
 */
export async function assertWritableHere(db: Queryable, repoId: number, repo: string, nodeId: string | undefined): Promise<void> {
  const state = await moveStateOf(db, repoId);
  if (!state) return;
  if (state.movingTo) throw new UnavailableError(`repository ${repo} is being moved to storage node ${state.movingTo}; try again in a moment`, FENCED_RETRY_AFTER_SECONDS);
  if (nodeId && state.nodeId && state.nodeId !== nodeId) {
    // Moved away while this request waited: the retry is routed to the new node.
    throw new UnavailableError(`repository ${repo} has moved to storage node ${state.nodeId}; try again`, 1);
  }
}

/** Fences the repository's writes for a move `from` → `to`; refuses when it is no longer on `from`. */
export async function fenceRepo(db: Queryable, i: Pick<MoveInput, 'repoId' | 'from' | 'to' | 'tenant' | 'repo'>): Promise<void> {
  if (!(await setMovingTo(db, i.repoId, i.from, i.to))) throw new ConflictError(`repository ${i.tenant}/${i.repo} is no longer on storage node ${i.from}, or another move fences it`);
}

/** Lifts this move's fence (a failed move); the repository stays where it was. */
export async function unfenceRepo(db: Queryable, i: Pick<MoveInput, 'repoId' | 'to'>): Promise<void> {
  await clearMovingTo(db, i.repoId, i.to);
}

/**
 * The switch: the repository is `to`'s from now on, and writes are open again, in one statement
 * (one transaction). A target that was one of its replica nodes is one no longer (it holds it).
 * Done twice (a retried activity), the second finds it done.
 */
export async function switchRepoNode(db: Queryable, i: Pick<MoveInput, 'repoId' | 'from' | 'to' | 'tenant' | 'repo'>): Promise<void> {
  if (await switchNode(db, i.repoId, i.from, i.to)) return;
  const state = await moveStateOf(db, i.repoId);
  if (state?.nodeId === i.to && !state.movingTo) return;
  throw new ConflictError(`repository ${i.tenant}/${i.repo} is not fenced for a move from ${i.from} to ${i.to}`);
}
