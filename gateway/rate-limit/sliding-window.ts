import { randomBytes } from 'node:crypto';
import type { Redis } from '../../core/redis';
import { EXPIRY_SLACK_MS, integers, limitResult, LuaScript, nowArg, nowLua, revocationGateLua, unlessRevoked, type LimitResult } from './lua-script';

export interface SlidingWindowLimit {
  /** Requests admitted in any window of `windowMs`. */
  limit: number;
  windowMs: number;
}

/**
 * A true sliding window as a log in a sorted set: one member per admitted request, scored by its
 * time in ms. Exact (unlike fixed or approximated windows, a burst at a window edge cannot get twice
 * the limit through) at the cost of up to `limit` entries per key.
 *
 * The window is (now - windowMs, now]: an entry made at t leaves at exactly t + windowMs.
 * Lua functions shared with the combined window + bucket script, so both run the same code.
 */
export const SLIDING_WINDOW_LUA_FUNCTIONS = `
local function sw_check(key, limit, window, now)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  local oldest = nil
  if count > 0 then oldest = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2]) end
  local retry = 0
  if count >= limit then
    -- count - limit + 1 entries must leave before one more fits (more than one if the limit was lowered)
    local i = count - limit
    retry = tonumber(redis.call('ZRANGE', key, i, i, 'WITHSCORES')[2]) + window - now
  end
  return { allowed = count < limit, count = count, oldest = oldest, retry = retry }
end

local function sw_commit(key, window, now, member)
  redis.call('ZADD', key, now, member)
  -- every entry is at most window old, so the key can go when the newest leaves
  redis.call('PEXPIRE', key, window + ${EXPIRY_SLACK_MS})
end

-- {allowed, remaining, resetMs, retryAfterMs}; committed says whether this request was recorded
local function sw_reply(s, limit, window, now, committed)
  local count, oldest = s.count, s.oldest
  if committed then
    count = count + 1
    oldest = oldest or now
  end
  local reset = 0
  if oldest then reset = oldest + window - now end
  return { s.allowed and 1 or 0, math.max(0, limit - count), reset, s.retry }
end
`;

// KEYS[1] the log, [KEYS[2] a revocation tombstone]; ARGV: limit, windowMs, unique member, [now ms]
const SCRIPT = new LuaScript(`${SLIDING_WINDOW_LUA_FUNCTIONS}
${revocationGateLua(1)}
${nowLua(4)}
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local s = sw_check(KEYS[1], limit, window, now)
if s.allowed then sw_commit(KEYS[1], window, now, ARGV[3]) end
return sw_reply(s, limit, window, now, s.allowed)
`);

// KEYS[1] the log; ARGV: limit, windowMs, [now ms]. Checks without recording anything.
const PEEK_SCRIPT = new LuaScript(`${SLIDING_WINDOW_LUA_FUNCTIONS}
${nowLua(3)}
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local s = sw_check(KEYS[1], limit, window, now)
return sw_reply(s, limit, window, now, false)
`);

/** Whether one more entry would fit in `key`'s window now, recording nothing (one round trip). */
export async function slidingWindowPeek(redis: Redis, key: string, limit: SlidingWindowLimit, nowMs?: number): Promise<LimitResult> {
  return limitResult(integers(await PEEK_SCRIPT.run(redis, [key], [limit.limit, limit.windowMs, nowArg(nowMs)]), 4));
}

// Members must be unique even for requests in the same millisecond (or the same explicit test
// time), or ZADD would overwrite instead of adding: a per-process random prefix plus a counter.
const INSTANCE = randomBytes(6).toString('hex');
let sequence = 0;
export function uniqueMember(): string {
  sequence = (sequence + 1) % Number.MAX_SAFE_INTEGER;
  return `${INSTANCE}:${sequence}`;
}

/**
 * Admits the request and records it if fewer than `limit` were admitted in the last `windowMs`
 * under `key`; one atomic round trip. `nowMs` is for tests only: without it Redis's clock is used.
 * With `revokedKey`, a CredentialRevokedError (and nothing counted) when that tombstone exists.
 */
export async function slidingWindow(redis: Redis, key: string, limit: SlidingWindowLimit, nowMs?: number, revokedKey?: string): Promise<LimitResult> {
  const reply = await SCRIPT.run(redis, revokedKey ? [key, revokedKey] : [key], [limit.limit, limit.windowMs, uniqueMember(), nowArg(nowMs)]);
  return limitResult(integers(unlessRevoked(reply), 4));
}
