import { UnavailableError } from './errors';
import type { ShardRouter } from './shard-router';
import { SHARD_FENCED_SQLSTATE } from './stores/shard-move-store';

/**
 * Writes to a shard that is being moved (ADR 0026): the source database's guard trigger refuses them
 * with SQLSTATE DGF01 from the fence until the old copy is gone, whatever shard map the writer holds.
 * For a caller that is a retry shortly (503 + Retry-After); a writer that can wait refreshes its
 * router (the switch may already be committed) and tries again.
 */

/** Seconds a refused request is told to wait: the fence lasts a few seconds at most. */
export const SHARD_FENCED_RETRY_AFTER_SECONDS = 1;

/** Whether `err` (or its cause) is the fence's refusal. */
export function isShardFenced(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (e.code === SHARD_FENCED_SQLSTATE) return true;
  }
  return false;
}

const fencedListeners = new Set<() => void>();

/**
 * Calls `listener` whenever `shardFenced` maps a refusal (a process refreshes its router then, so
 * the client's retry finds the shard's new database even if the switch's announcement was lost).
 * Answers the unsubscribe.
 */
export function onShardFenced(listener: () => void): () => void {
  fencedListeners.add(listener);
  return () => void fencedListeners.delete(listener);
}

/** The fence's refusal as a domain error (503, Retry-After); undefined for anything else. */
export function shardFenced(err: unknown): UnavailableError | undefined {
  if (!isShardFenced(err)) return undefined;
  for (const listener of fencedListeners) listener();
  const message = (err as { message?: string }).message ?? 'the shard is moving';
  return new UnavailableError(`${message} (writes to this tenant's shard pause while it moves to another database)`, SHARD_FENCED_RETRY_AFTER_SECONDS, { cause: err });
}

/**
 * Runs a write; when the fence refuses it, refreshes the router's placements and runs it again (on
 * the shard's new database once the switch is committed), up to `attempts` times `delayMs` apart.
 * `fn` must pick its database from the router on each call. Still fenced after that: the refusal
 * as UnavailableError.
 */
export async function retryWhenFenced<T>(
  router: Pick<ShardRouter, 'refresh'>,
  fn: () => Promise<T>,
  o: { attempts?: number; delayMs?: number; onFenced?: () => void } = {},
): Promise<T> {
  const attempts = o.attempts ?? 20;
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (!isShardFenced(err)) throw err;
      o.onFenced?.();
      if (i >= attempts) throw shardFenced(err)!;
      await new Promise((r) => setTimeout(r, o.delayMs ?? 250));
      await router.refresh().catch(() => undefined);
    }
  }
}

/**
 * Activities whose writes wait out a shard move's fence (ADR 0026): a call the fence refuses is run
 * again (after a refresh of the placements) within `retryWhenFenced`'s budget, before Temporal's
 * own retry policy sees a failure (which backs off for seconds and, for some activities, gives up
 * after a few attempts: a run or deploy would fail for a move that pauses writes for a second).
 * Activities are safe to run again (Temporal may retry any of them), and a fenced write rolled its
 * transaction back. The shard move's own activities are not wrapped: they hold the fence.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function retryActivitiesWhenFenced<A extends Record<string, (...args: any[]) => Promise<unknown>>>(router: Pick<ShardRouter, 'refresh'>, activities: A): A {
  return Object.fromEntries(Object.entries(activities).map(([name, fn]) => [name, (...args: unknown[]) => retryWhenFenced(router, () => fn(...args))])) as A;
}
