import type { LimitResult } from './lua-script';
import type { ClassLimits, RouteClass } from './policy';

// Header fields of draft-ietf-httpapi-ratelimit-headers-08: structured-field Lists whose items are
// a policy name (sf-string) with integer parameters. RateLimit-Policy: q = quota, w = window (s).
// RateLimit: r = remaining quota, t = seconds until the quota resets.

/** An sf-string: quoted, with `\` and `"` escaped. */
function sfString(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** Milliseconds as whole seconds, rounded up (a client waiting that long is never early). */
export function ceilSeconds(ms: number): number {
  return Math.max(0, Math.ceil(ms / 1000));
}

/** `Retry-After` in seconds: rounded up and at least 1, since 0 would invite an immediate retry. */
export function retryAfterSeconds(ms: number): number {
  return Math.max(1, ceilSeconds(ms));
}

/** Name of a class's bucket policy, listed next to its window policy. */
export function burstPolicyName(cls: RouteClass): string {
  return `${cls}-burst`;
}

/**
 * RateLimit-Policy and RateLimit for one request. A class with a bucket lists a second policy
 * `"<class>-burst"`: q = capacity, w = the seconds a full bucket takes to drain (so q/w is the
 * sustained rate), r = requests that fit now, t = seconds until it is empty.
 */
export function rateLimitHeaders(cls: RouteClass, limits: ClassLimits, window: LimitResult, bucket?: LimitResult): Record<string, string> {
  const policies = [`${sfString(cls)};q=${limits.window.limit};w=${ceilSeconds(limits.window.windowMs)}`];
  const states = [`${sfString(cls)};r=${window.remaining};t=${ceilSeconds(window.resetMs)}`];
  if (limits.bucket && bucket) {
    const name = sfString(burstPolicyName(cls));
    policies.push(`${name};q=${limits.bucket.capacity};w=${ceilSeconds((limits.bucket.capacity * 1000) / limits.bucket.ratePerSecond)}`);
    states.push(`${name};r=${bucket.remaining};t=${ceilSeconds(bucket.resetMs)}`);
  }
  return { 'RateLimit-Policy': policies.join(', '), RateLimit: states.join(', ') };
}
