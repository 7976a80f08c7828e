import type { Redis } from '../../core/redis';
import { LEAKY_BUCKET_LUA_FUNCTIONS, type LeakyBucketLimit } from './leaky-bucket';
import { integers, limitResult, LuaScript, nowArg, nowLua, revocationGateLua, unlessRevoked, type LimitResult } from './lua-script';
import { SLIDING_WINDOW_LUA_FUNCTIONS, uniqueMember, type SlidingWindowLimit } from './sliding-window';

/**
 * Both limits in one script: the request is admitted only if the window AND the bucket have room,
 * and only then is it recorded in both. So a refusal by either consumes neither (no order to get
 * wrong, no refund step), and it is still one round trip and atomic.
 * Both keys must live on one Redis node (true for a single Redis; a cluster would need a hash tag).
 */
// KEYS: window log, bucket hash, [a revocation tombstone]; ARGV: limit, windowMs, member, capacity, ratePerSecond, [now ms]
const SCRIPT = new LuaScript(`${SLIDING_WINDOW_LUA_FUNCTIONS}
${LEAKY_BUCKET_LUA_FUNCTIONS}
${revocationGateLua(2)}
${nowLua(6)}
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local w = sw_check(KEYS[1], limit, window, now)
local b = lb_check(KEYS[2], tonumber(ARGV[4]), tonumber(ARGV[5]), now)
local ok = w.allowed and b.allowed
if ok then
  sw_commit(KEYS[1], window, now, ARGV[3])
  lb_commit(KEYS[2], b, now)
end
local wr, br = sw_reply(w, limit, window, now, ok), lb_reply(b, ok)
return { wr[1], wr[2], wr[3], wr[4], br[1], br[2], br[3], br[4] }
`);

export interface WindowAndBucketResult {
  /** Admitted by both (and then recorded in both). */
  allowed: boolean;
  /** Each limit's own view; `allowed` there says whether that limit alone had room. */
  window: LimitResult;
  bucket: LimitResult;
}

export async function windowAndBucket(
  redis: Redis,
  keys: { window: string; bucket: string },
  limits: { window: SlidingWindowLimit; bucket: LeakyBucketLimit },
  nowMs?: number,
  revokedKey?: string,
): Promise<WindowAndBucketResult> {
  const reply = await SCRIPT.run(redis, revokedKey ? [keys.window, keys.bucket, revokedKey] : [keys.window, keys.bucket], [
    limits.window.limit, limits.window.windowMs, uniqueMember(), limits.bucket.capacity, limits.bucket.ratePerSecond, nowArg(nowMs),
  ]);
  const n = integers(unlessRevoked(reply), 8);
  const window = limitResult(n.slice(0, 4));
  const bucket = limitResult(n.slice(4, 8));
  return { allowed: window.allowed && bucket.allowed, window, bucket };
}
