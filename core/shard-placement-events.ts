import type { Redis } from './redis';
import type { ShardRouter } from './shard-router';
import { onShardFenced } from './shard-fence';
import { SHARD_PLACEMENT_CHANNEL } from './shard-moves';

/**
 * How a process learns that a shard move switched a placement (ADR 0026): the move publishes on
 * SHARD_PLACEMENT_CHANNEL and every process re-reads the placements at once; a poll every
 * `pollSeconds` catches a message lost while Redis was away, and a request refused by a fence
 * (mapped to 503 by the error middleware) refreshes too, at most once a second. None is needed for correctness:
 * a write on a stale map hits the source's fence and is retried after a refresh
 * (core/shard-fence.ts); they bound how long reads may see the old copy (until the grace period
 * ends it).
 */
export function followShardPlacements(router: Pick<ShardRouter, 'refresh'>, redis: Redis, o: { pollSeconds?: number; onError?: (err: unknown) => void } = {}): { stop(): Promise<void> } {
  const refresh = () => router.refresh().catch((err: unknown) => o.onError?.(err));
  let lastFencedRefresh = 0;
  const unsubscribe = onShardFenced(() => {
    if (Date.now() - lastFencedRefresh < 1000) return;
    lastFencedRefresh = Date.now();
    void refresh();
  });
  // A subscribed connection takes no other commands: a connection of its own.
  const sub = redis.duplicate();
  sub.on('error', () => undefined);
  sub.on('message', (channel) => {
    if (channel === SHARD_PLACEMENT_CHANNEL) void refresh();
  });
  void sub.subscribe(SHARD_PLACEMENT_CHANNEL).catch((err: unknown) => o.onError?.(err));
  const timer = setInterval(() => void refresh(), (o.pollSeconds ?? 30) * 1000);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      unsubscribe();
      sub.disconnect();
    },
  };
}
