import { inTransaction, type Db } from './db';
import { withDeadline } from './deadline';
import { jobPendingReasons } from './pending-reasons';
import { logStreamKey, type Redis } from './redis';
import { MAX_RUN_EVENTS, RUN_EVENTS_TTL_SECONDS } from './run-events';
import { lockRunForPendingEvents } from './stores/runs-store';

/**
 * Pending reasons on a run's live event stream (ADR 0044): a `pending` event `{job, reason,
 * message}` when a job starts waiting or its reason changes, and `{job, reason: null}` when it
 * stops (it started, was skipped, or is gone). The reasons are those `GET /runs/{id}` derives from
 * the rows (core/pending-reasons.ts), told by the activities that change those rows, right after
 * they did: no activity of its own, so no Temporal action, as ADR 0037 wants of waits.
 *
 * What each job's last event said is kept in a Redis hash beside the stream, so only changes are
 * sent. Publishers of one run take turns on a Postgres advisory lock and read the rows under it,
 * so a slower publisher never overwrites a newer reason with one it read before.
 */

/** Redis hash of a run's jobs whose last `pending` event gave a reason: job → `reason\nmessage`. */
export function pendingEventsKey(runId: string): string {
  return `dotgit:runpending:${runId}`;
}

/** How long the Redis part may take before this publication is given up (live events never hold a run up). */
const REDIS_BUDGET_MS = 2000;

function within<T>(p: Promise<T>): Promise<T> {
  return withDeadline(p, REDIS_BUDGET_MS, () => new Error('redis did not answer in time'));
}

/**
 * Sends the `pending` events of the jobs of `runId` whose reason changed since the last ones sent.
 * `reset` (a run's attempt starting) forgets what earlier attempts sent. Best effort: a failure
 * costs the events, never the caller's step.
 */
export async function publishPendingEvents(db: Db, redis: Redis | undefined, tenantId: number, runId: string, o: { reset?: boolean } = {}): Promise<void> {
  if (!redis) return;
  const key = pendingEventsKey(runId);
  const stream = logStreamKey(runId);
  try {
    await inTransaction(db, async (c) => {
      const steps = await lockRunForPendingEvents(c, tenantId, runId);
      // A run that is not running has no waiting jobs to tell of (its status event says the rest).
      if (steps === null) {
        await within(redis.del(key));
        return;
      }
      const now = jobPendingReasons('running', steps);
      const sent: Record<string, string> = o.reset ? {} : await within(redis.hgetall(key));
      // In the run's order, then jobs that are gone (a dynamic matrix job replaced by its instances).
      const jobs = [...new Set([...steps.map((s) => s.job), ...Object.keys(sent)])];
      const tx = redis.multi();
      if (o.reset) tx.del(key);
      let changed = 0;
      for (const job of jobs) {
        const reason = now.get(job);
        const text = reason ? `${reason.reason}\n${reason.message}` : undefined;
        if ((Object.hasOwn(sent, job) ? sent[job] : undefined) === text) continue;
        if (text) tx.hset(key, job, text);
        else tx.hdel(key, job);
        tx.xadd(stream, 'MAXLEN', '~', MAX_RUN_EVENTS, '*', 'event', 'pending', 'job', job, 'reason', reason?.reason ?? '', 'message', reason?.message ?? '');
        changed++;
      }
      if (changed === 0 && !o.reset) return;
      tx.expire(key, RUN_EVENTS_TTL_SECONDS).expire(stream, RUN_EVENTS_TTL_SECONDS);
      await within(tx.exec());
    });
  } catch {
    // Redis or Postgres away: the next publication (or GET /runs/{id}) tells the truth again.
  }
}

/** Forgets what was sent for a run that ended (its terminal status ends every wait). */
export async function forgetPendingEvents(redis: Redis | undefined, runId: string): Promise<void> {
  await redis?.del(pendingEventsKey(runId)).catch(() => undefined);
}
