import { ApplicationFailure } from '@temporalio/activity';
import type { Db } from '../core/db';
import { ConflictError } from '../core/errors';
import { SERVICE_HEADER, signServiceToken } from '../core/internal-identity';
import { fenceRepo, MOVE_SERVICE, switchRepoNode, unfenceRepo, type MoveInput, type RefMap } from '../core/repo-moves';
import { fingerprintOf } from '../core/replica-sync';
import type { ShardRouter } from '../core/shard-router';
import { findNode, type StorageNode } from '../core/storage-nodes';
import { tenantDirectory } from '../core/tenant-directory';

export interface MoveDeps {
  db: Db;
  /** The repository's row is in its tenant's shard, storage nodes in the global database (ADR 0025); without it, `db` holds both. */
  router?: ShardRouter;
  internalSecret: string;
}

/**
 * Activities of moving a repository (workflows/move.ts): they run on the orchestration queue and
 * touch no disk themselves: the nodes copy, fence and drop (git-server/repo-move.ts), these call
 * them and keep the records (core/repo-moves.ts).
 */
export function createMoveActivities(deps: MoveDeps) {
  // The move's input names the tenant (its id is not in it): the directory finds its shard.
  const repoDb = async (i: MoveInput): Promise<Db> => (deps.router ? tenantDirectory(deps.router).dbOfOwner(i.tenant) : deps.db);

  async function node(id: string): Promise<StorageNode> {
    const n = await findNode(deps.router?.global ?? deps.db, id);
    if (!n) throw ApplicationFailure.nonRetryable(`storage node ${id} is not registered`, 'UnknownNode');
    return n;
  }

  /** POSTs to a node's move route; a 4xx answer is final (retrying cannot change it), others are retried. */
  async function call<T>(nodeId: string, route: string, body: Record<string, unknown>): Promise<T> {
    const n = await node(nodeId);
    const token = await signServiceToken(deps.internalSecret, MOVE_SERVICE, {}, 300);
    let res: Response;
    try {
      res = await fetch(`${n.url.replace(/\/+$/, '')}/internal/repos/${route}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', [SERVICE_HEADER]: token },
        body: JSON.stringify(body),
      });
    } catch (err) {
      throw new Error(`storage node ${nodeId} did not answer ${route}: ${(err as Error).message}`);
    }
    const text = await res.text();
    if (!res.ok) {
      let message = text.slice(0, 500);
      try {
        message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? message;
      } catch {
        // not JSON: the text itself
      }
      const what = `storage node ${nodeId} answered ${route} with ${res.status}: ${message}`;
      if (res.status >= 400 && res.status < 500) throw ApplicationFailure.nonRetryable(what, 'MoveRefused');
      throw new Error(what);
    }
    return JSON.parse(text) as T;
  }

  const names = (i: MoveInput) => ({ owner: i.tenant, name: i.repo });

  return {
    /** The target fetches the repository from the source (writes still open: the bulk of the copy). */
    async copyRepository(i: MoveInput): Promise<{ refs: number }> {
      const source = await node(i.from);
      const r = await call<{ refs: RefMap }>(i.to, 'move-in', { ...names(i), from: source.url });
      return { refs: Object.keys(r.refs).length };
    },

    /**
     * Fences the repository's writes, then waits at the source for the pushes that began before
     * the fence (the barrier takes the write lock they hold). Answers the source's refs, which
     * cannot change from now on.
     */
    async fenceWrites(i: MoveInput): Promise<{ refs: RefMap }> {
      try {
        await fenceRepo(await repoDb(i), i);
      } catch (err) {
        if (err instanceof ConflictError) throw ApplicationFailure.nonRetryable(err.message, 'MoveConflict');
        throw err;
      }
      return call<{ refs: RefMap }>(i.from, 'move-barrier', names(i));
    },

    /** The target fetches again (what was pushed during the copy) and must then hold exactly the source's refs. */
    async catchUp(i: MoveInput & { sourceRefs: RefMap }): Promise<{ refs: number }> {
      const source = await node(i.from);
      const { refs } = await call<{ refs: RefMap }>(i.to, 'move-in', { ...names(i), from: source.url });
      if (fingerprintOf(refs) !== fingerprintOf(i.sourceRefs)) {
        const differ = [...new Set([...Object.keys(refs), ...Object.keys(i.sourceRefs)])].filter((r) => refs[r] !== i.sourceRefs[r]);
        throw ApplicationFailure.nonRetryable(`refs on ${i.to} differ from ${i.from}'s after the catch-up: ${differ.slice(0, 10).join(', ')}`, 'MoveVerifyFailed');
      }
      return { refs: Object.keys(refs).length };
    },

    /** The switch: `repos.node_id` becomes the target and writes open again, in one transaction. */
    async switchNode(i: MoveInput): Promise<void> {
      try {
        await switchRepoNode(await repoDb(i), i);
      } catch (err) {
        if (err instanceof ConflictError) throw ApplicationFailure.nonRetryable(err.message, 'MoveConflict');
        throw err;
      }
    },

    /** A failed move: writes open again on the source, which still holds the repository. */
    async unfence(i: MoveInput): Promise<void> {
      await unfenceRepo(await repoDb(i), i);
    },

    /** Removes a node's copy that is not the repository (the source's after the switch, the target's after a failure). */
    async dropCopy(i: MoveInput & { node: string }): Promise<void> {
      await call(i.node, 'move-drop', names(i));
    },
  };
}

export type MoveActivities = ReturnType<typeof createMoveActivities>;
