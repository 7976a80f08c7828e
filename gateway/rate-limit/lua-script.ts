import { createHash } from 'node:crypto';
import type { Redis } from '../../core/redis';

/**
 * A Lua script run by EVALSHA, falling back to EVAL when the server has not cached it yet
 * (NOSCRIPT: first use, a Redis restart, SCRIPT FLUSH, or a failover to a replica). In the steady
 * state every call is one round trip that sends only the 40-character hash, not the script.
 */
export class LuaScript {
  readonly sha: string;

  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(redis: Redis, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.includes('NOSCRIPT')) throw err;
      // EVAL runs the script and caches it under the same hash, so the next call is an EVALSHA hit.
      return redis.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}

/** A script's reply as the list of integers our scripts return (Redis truncates Lua numbers to integers). */
export function integers(reply: unknown, count: number): number[] {
  if (!Array.isArray(reply) || reply.length !== count || !reply.every((v) => typeof v === 'number')) {
    throw new Error(`unexpected rate-limit script reply: ${JSON.stringify(reply)}`);
  }
  return reply as number[];
}

/**
 * Lua that sets `now` (milliseconds): the caller's explicit time if given (tests pin exact
 * boundaries), otherwise the Redis server's clock, so every gateway instance sees one clock and
 * host clock skew cannot widen or narrow a window.
 */
export function nowLua(argIndex: number): string {
  return `
local now = tonumber(ARGV[${argIndex}])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end`;
}

/** One algorithm's answer for one request. Durations are milliseconds from now. */
export interface LimitResult {
  allowed: boolean;
  /** Requests that would still be admitted right now after this one. */
  remaining: number;
  /** Until the limit is fully available again: the oldest entry leaves the window / the bucket is empty. */
  resetMs: number;
  /** When refused, until one more request fits; 0 when allowed. */
  retryAfterMs: number;
}

/** The four integers `{allowed, remaining, resetMs, retryAfterMs}` of a script reply as a LimitResult. */
export function limitResult([allowed, remaining, resetMs, retryAfterMs]: number[]): LimitResult {
  return { allowed: allowed === 1, remaining, resetMs, retryAfterMs };
}

/** The optional explicit time as a script argument: empty means "use the Redis clock". */
export function nowArg(nowMs: number | undefined): string {
  if (nowMs === undefined) return '';
  if (!Number.isFinite(nowMs)) throw new TypeError(`nowMs must be a finite number, got ${nowMs}`);
  return String(Math.floor(nowMs));
}

/**
 * Extra life given to limiter keys beyond what the algorithm needs. Expiry only reclaims memory and
 * never decides a request (the scripts prune by time themselves), so a margin costs nothing and
 * keeps state alive for callers (tests) whose explicit clock runs slower than the real one.
 */
export const EXPIRY_SLACK_MS = 1000;

/**
 * Thrown by a limit script whose revocation key exists (the caller's token was revoked): nothing was
 * counted. Not a Redis failure, so the limiter must not fail open on it.
 */
export class CredentialRevokedError extends Error {
  override readonly name = 'CredentialRevokedError';
  constructor() {
    super('the credential was revoked');
  }
}

/**
 * Lua run first by a limit script over `limitKeys` keys: when one more key was passed, it is the
 * caller's revocation tombstone, and if it exists the script answers {-1} and counts nothing. So the
 * gateway learns "revoked?" in the same round trip as the limit.
 */
export function revocationGateLua(limitKeys: number): string {
  return `
if #KEYS > ${limitKeys} and redis.call('EXISTS', KEYS[${limitKeys + 1}]) == 1 then return { -1 } end`;
}

/** Throws CredentialRevokedError for the gate's {-1} reply; returns the reply otherwise. */
export function unlessRevoked(reply: unknown): unknown {
  if (Array.isArray(reply) && reply.length === 1 && reply[0] === -1) throw new CredentialRevokedError();
  return reply;
}
