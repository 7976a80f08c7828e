import type { RequestHandler } from 'express';
import { withDeadline } from '../core/deadline';
import type { Redis } from 'ioredis';
import { onReplicas, POLL_MS } from '../core/db-replicas';

/**
 * Which API reads may go to a Postgres standby, and read-your-writes for them (issue 13 item 3,
 * ADR 0027). Writes (any method but GET/HEAD) mark their principal: "writing" while the request
 * runs, then the time its answer was sent. Reads on the listed paths run inside onReplicas with
 * that time, so the data layer serves them from a standby only if it provably holds the write,
 * else from the primary. The mark lives in this process and in Redis (`dotgit:ryw:<user id>`), so
 * a read that the gateway sends to another api instance sees it too.
 */

/** Read-heavy GETs: run lists, a run and its logs index and artifacts, repositories, deploy lists. */
const READ_PATHS = [
  /^\/repos\/?$/,
  /^\/repos\/[^/]+\/[^/]+\/?$/,
  /^\/repos\/[^/]+\/[^/]+\/(runs|deploys|replicas)\/?$/,
  /^\/runs\/[^/]+\/?$/,
  /^\/runs\/[^/]+\/(logs|artifacts)\/?$/,
];

const PENDING = 'writing';
/** A Redis call on a request's path waits at most this long; without an answer the read goes to the primary. */
const REDIS_TIMEOUT_MS = 100;

const key = (userId: number) => `dotgit:ryw:${userId}`;

function withTimeout<T>(p: Promise<T>): Promise<T> {
  return withDeadline(p, REDIS_TIMEOUT_MS, () => new Error('redis timeout'));
}

export function readRouting(o: { redis?: Redis; maxLagSeconds: number }) {
  // Past this, any standby still getting reads has replayed the write (its lag is within the bound).
  const markMs = Math.ceil(o.maxLagSeconds * 1000 + 2 * POLL_MS + 1000);
  const local = new Map<number, { pending: number; endedAt: number }>();

  /** Marks the principal of every write request; first in the chain, before the handlers. */
  const trackWrites: RequestHandler = (req, res, next) => {
    const userId = req.principal?.userId;
    if (req.method === 'GET' || req.method === 'HEAD' || userId === undefined || o.maxLagSeconds <= 0) return next();
    const mark = local.get(userId) ?? { pending: 0, endedAt: 0 };
    mark.pending++;
    local.set(userId, mark);
    res.once('close', () => {
      mark.pending--;
      mark.endedAt = Date.now();
      void o.redis?.set(key(userId), String(mark.endedAt), 'PX', markMs).catch(() => undefined);
      setTimeout(() => {
        if (local.get(userId) === mark && mark.pending === 0 && Date.now() - mark.endedAt >= markMs) local.delete(userId);
      }, markMs + 100).unref();
    });
    if (!o.redis) return next();
    // Other api instances must see the write in flight before it can commit.
    withTimeout(o.redis.set(key(userId), PENDING, 'PX', 60_000)).then(() => next(), () => next());
  };

  /** The last write of this reader: epoch ms, Infinity while one runs or unknown, undefined for none lately. */
  async function lastWriteOf(userId: number | undefined): Promise<number | undefined> {
    if (userId === undefined) return undefined;
    const mark = local.get(userId);
    if (mark?.pending) return Infinity;
    if (!o.redis) return mark?.endedAt;
    try {
      const shared = await withTimeout(o.redis.get(key(userId)));
      if (shared === PENDING) return Infinity;
      const at = Math.max(Number(shared ?? 0), mark?.endedAt ?? 0);
      return at > 0 ? at : undefined;
    } catch {
      return Infinity;
    }
  }

  /** Runs the read-heavy GETs (paths below /api/v1) inside onReplicas; mounted on the v1 router. */
  const readsOnReplicas: RequestHandler = (req, _res, next) => {
    if (req.method !== 'GET' || o.maxLagSeconds <= 0 || !READ_PATHS.some((p) => p.test(req.path))) return next();
    lastWriteOf(req.principal?.userId).then((at) => onReplicas(at, () => next()), next);
  };

  return { trackWrites, readsOnReplicas };
}
