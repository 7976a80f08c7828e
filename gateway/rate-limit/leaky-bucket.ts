import type { Redis } from '../../core/redis';
import { EXPIRY_SLACK_MS, integers, limitResult, LuaScript, nowArg, nowLua, type LimitResult } from './lua-script';

export interface LeakyBucketLimit {
  /** Most requests the bucket holds: the largest burst admitted at once. */
  capacity: number;
  /** Requests drained per second: the sustained rate a burst is smoothed to. */
  ratePerSecond: number;
}

/**
 * A leaky bucket (as a meter) in a hash {level, ts}: the level drains continuously at the rate; a
 * request adds 1 if that still fits the capacity, else it is refused until enough has drained.
 * The level is kept in millionths of a request so whole-number rates drain in exact integers
 * (no float rounding at the boundary: "allowed after exactly 1000 ms" holds).
 * Refusals write nothing: the state stays the last admission's, and the drain is computed from it.
 */
export const LEAKY_BUCKET_LUA_FUNCTIONS = `
local LB_UNIT = 1000000

local function lb_check(key, capacity, rate, now)
  local h = redis.call('HMGET', key, 'level', 'ts')
  local level = tonumber(h[1]) or 0
  local ts = tonumber(h[2]) or now
  local per_ms = rate * 1000 -- units drained per ms
  level = math.max(0, level - math.max(0, now - ts) * per_ms)
  local full = capacity * LB_UNIT
  local retry = 0
  if level + LB_UNIT > full then retry = math.ceil((level + LB_UNIT - full) / per_ms) end
  return { allowed = level + LB_UNIT <= full, level = level, full = full, per_ms = per_ms, retry = retry }
end

local function lb_commit(key, s, now)
  local level = s.level + LB_UNIT
  redis.call('HSET', key, 'level', level, 'ts', now)
  -- an untouched bucket is empty again after level / rate
  redis.call('PEXPIRE', key, math.ceil(level / s.per_ms) + ${EXPIRY_SLACK_MS})
end

-- {allowed, remaining, resetMs, retryAfterMs}; committed says whether this request was added
local function lb_reply(s, committed)
  local level = s.level
  if committed then level = level + LB_UNIT end
  return { s.allowed and 1 or 0, math.floor((s.full - level) / LB_UNIT), math.ceil(level / s.per_ms), s.retry }
end
`;

// KEYS[1] the bucket hash; ARGV: capacity, ratePerSecond, [now ms]
const SCRIPT = new LuaScript(`${LEAKY_BUCKET_LUA_FUNCTIONS}
${nowLua(3)}
local s = lb_check(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), now)
if s.allowed then lb_commit(KEYS[1], s, now) end
return lb_reply(s, s.allowed)
`);

/**
 * Adds the request to the bucket under `key` if it fits; one atomic round trip. `nowMs` is for
 * tests only: without it Redis's clock is used.
 */
export async function leakyBucket(redis: Redis, key: string, bucket: LeakyBucketLimit, nowMs?: number): Promise<LimitResult> {
  const reply = await SCRIPT.run(redis, [key], [bucket.capacity, bucket.ratePerSecond, nowArg(nowMs)]);
  return limitResult(integers(reply, 4));
}
