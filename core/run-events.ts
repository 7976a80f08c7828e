import type { Db } from './db';
import { deployStatus } from './stores/deploys-store';
import { runStatus } from './stores/runs-store';
import { InputError } from './errors';
import { logStreamKey, streamFields, type Redis } from './redis';
import type { PendingReason } from './pending-reasons';

/**
 * A run's (or deploy's) events live in one Redis stream, in the order they happened: `log` lines
 * written by the sandbox as they are printed, `step` status changes and the run's `status`. The
 * stream entry id is the SSE event id, so a client that reconnects with `Last-Event-ID` gets exactly
 * the entries after the last one it saw: no line lost, none repeated.
 */
export type RunEvent =
  | { id: string; event: 'log'; data: { job: string; step: string; stream: string; line: string; attempt?: number } }
  | { id: string; event: 'step'; data: { job: string; step: string; status: string; exitCode: number | null; attempt?: number } }
  | { id: string; event: 'status'; data: { status: string; message: string | null } }
  // Why a job waits (ADR 0044, core/pending-events.ts): its reason when it starts waiting or the reason changes, null when it stops.
  | { id: string; event: 'pending'; data: { job: string; reason: PendingReason['reason'] | null; message: string | null } };

/** How long a run's event stream stays in Redis after its last entry (the whole logs are in the object store). */
export const RUN_EVENTS_TTL_SECONDS = 24 * 60 * 60;
/** After the terminal status the stream is kept this long for late watchers, then goes (the stored logs stay). */
export const RUN_EVENTS_TTL_AFTER_END_SECONDS = 60 * 60;
/** A run's stream keeps about this many entries (XADD MAXLEN ~); older lines are in the stored logs. */
export const MAX_RUN_EVENTS = 100_000;
/** Terminal statuses of runs and deploys: the event stream ends after one of these. */
export const TERMINAL_STATUSES = new Set(['success', 'failure', 'cancelled', 'rolled_back', 'rejected']);

/** Appends a `step` or `status` event. Best effort: live events must never fail a run. */
export async function appendRunEvent(
  redis: Redis | undefined,
  runId: string,
  e: { event: 'step'; job: string; step: string; status: string; exitCode?: number | null; attempt?: number } | { event: 'status'; status: string; message?: string | null },
): Promise<void> {
  if (!redis) return;
  const fields =
    e.event === 'step'
      ? ['event', 'step', 'job', e.job, 'step', e.step, 'status', e.status, 'exitCode', e.exitCode == null ? '' : String(e.exitCode), ...(e.attempt ? ['attempt', String(e.attempt)] : [])]
      : ['event', 'status', 'status', e.status, 'message', e.message ?? ''];
  await appendStreamEntry(redis, runId, fields, e.event === 'status' && TERMINAL_STATUSES.has(e.status) ? RUN_EVENTS_TTL_AFTER_END_SECONDS : RUN_EVENTS_TTL_SECONDS);
}

/**
 * One entry on a run's stream (an event, or a log line: `liveLineFields`), capped at
 * MAX_RUN_EVENTS, its expiry renewed. Best effort: live events must never fail a run.
 */
export async function appendStreamEntry(redis: Redis, runId: string, fields: string[], ttlSeconds = RUN_EVENTS_TTL_SECONDS): Promise<void> {
  const key = logStreamKey(runId);
  await redis
    .multi()
    .xadd(key, 'MAXLEN', '~', MAX_RUN_EVENTS, '*', ...fields)
    .expire(key, ttlSeconds)
    .exec()
    .catch(() => undefined);
}

/** A stream entry as a typed event; entries without `event` are log lines (the sandbox's LogSink writes those). */
export function toRunEvent(id: string, flat: string[]): RunEvent {
  const f = streamFields(flat);
  // `attempt` (issue 10) is absent from entries written before it existed.
  const attempt = f.attempt ? { attempt: Number(f.attempt) } : {};
  if (f.event === 'step') return { id, event: 'step', data: { job: f.job, step: f.step, status: f.status, exitCode: f.exitCode ? Number(f.exitCode) : null, ...attempt } };
  if (f.event === 'status') return { id, event: 'status', data: { status: f.status, message: f.message || null } };
  if (f.event === 'pending') return { id, event: 'pending', data: { job: f.job, reason: (f.reason || null) as PendingReason['reason'] | null, message: f.message || null } };
  return { id, event: 'log', data: { job: f.job, step: f.step, stream: f.stream, line: f.line, ...attempt } };
}

/** Stream entry ids are `<ms>-<seq>`; anything else from a client is refused rather than passed to Redis. */
export function isStreamId(id: string): boolean {
  return /^\d{1,20}-\d{1,20}$/.test(id);
}

export interface FollowOptions {
  /** Resume after this entry id ('' or '0-0' = from the start). */
  after: string;
  /** The run's current status from the database: used when the stream has no terminal event (expired, or ended outside the workflow). */
  currentStatus: () => Promise<{ status: string; message: string | null }>;
  /** Ends the iteration when it fires (client gone). */
  signal: AbortSignal;
  /** How long one blocking read waits before the database is asked again. Default 2000 ms. */
  blockMs?: number;
}

/**
 * Follows a run's events from `after` until its terminal `status` event. Uses its own Redis
 * connection, because a blocking XREAD holds the connection it runs on.
 */
export async function* followRunEvents(redis: Redis, runId: string, o: FollowOptions): AsyncGenerator<RunEvent> {
  const key = logStreamKey(runId);
  let last = o.after && isStreamId(o.after) ? o.after : '0-0';
  const reader = redis.duplicate();
  reader.on('error', () => undefined);
  const abort = () => reader.disconnect();
  o.signal.addEventListener('abort', abort, { once: true });
  try {
    while (!o.signal.aborted) {
      const answer = (await reader.xread('COUNT', 500, 'BLOCK', o.blockMs ?? 2000, 'STREAMS', key, last).catch((err) => {
        if (o.signal.aborted) return null;
        throw err;
      })) as [string, [string, string[]][]][] | null;
      const entries = answer?.[0]?.[1] ?? [];
      for (const [id, flat] of entries) {
        last = id;
        const e = toRunEvent(id, flat);
        yield e;
        if (e.event === 'status' && TERMINAL_STATUSES.has(e.data.status)) return;
      }
      if (entries.length === 0 && !o.signal.aborted) {
        // Nothing new: a run that ended without a terminal event in the stream ends here, from the database.
        const now = await o.currentStatus();
        if (TERMINAL_STATUSES.has(now.status)) {
          // Anything written between that read and this answer is delivered first.
          const rest = (await reader.xread('COUNT', 10_000, 'STREAMS', key, last)) as [string, [string, string[]][]][] | null;
          for (const [id, flat] of rest?.[0]?.[1] ?? []) {
            last = id;
            const e = toRunEvent(id, flat);
            yield e;
            if (e.event === 'status' && TERMINAL_STATUSES.has(e.data.status)) return;
          }
          yield { id: last, event: 'status', data: now };
          return;
        }
      }
    }
  } finally {
    o.signal.removeEventListener('abort', abort);
    reader.disconnect();
  }
}

/**
 * The events of a run or a deploy (a row of `table`, whose status the database keeps) after a
 * client's resume point. A malformed resume point is an InputError, thrown before anything is sent.
 */
export function followRowEvents(
  db: Db,
  redis: Redis,
  table: 'runs' | 'deploys',
  row: { tenantId: number; id: string },
  after: string,
  signal: AbortSignal,
): AsyncGenerator<RunEvent> {
  if (after && !isStreamId(after)) throw new InputError('Last-Event-ID must be an event id this stream sent, such as 1700000000000-0');
  const currentStatus = () => (table === 'runs' ? runStatus : deployStatus)(db, row.tenantId, row.id);
  return followRunEvents(redis, row.id, { after, currentStatus, signal });
}
