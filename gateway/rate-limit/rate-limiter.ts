import client from 'prom-client';
import { withDeadline } from '../../core/deadline';
import type { Redis } from '../../core/redis';
import { burstPolicyName, rateLimitHeaders, retryAfterSeconds } from './headers';
import { slidingWindow, slidingWindowPeek } from './sliding-window';
import { limitsFor, rateLimitKey, routeClass, subjectFor, type ClassLimits, type QueryInput, type RateLimitConfig, type RouteClass } from './policy';
import { CredentialRevokedError, type LimitResult } from './lua-script';
import { windowAndBucket } from './window-and-bucket';

const redisFailures = new client.Counter({
  name: 'dotgit_rate_limit_redis_failures_total',
  help: 'rate-limit checks that got no answer from Redis (error or timeout) and failed open or closed',
  labelNames: ['reason', 'mode'],
});
const refusals = new client.Counter({
  name: 'dotgit_rate_limit_refusals_total',
  help: 'requests refused with 429 by a rate limit',
  labelNames: ['class'],
});
// The other half of the limiter's decisions (issue 14 item 2): with refusals, the share refused per class.
const allowed = new client.Counter({
  name: 'dotgit_rate_limit_allowed_total',
  help: 'requests a rate limit let through (Redis answered), by class',
  labelNames: ['class'],
});

export interface RateLimiterOptions {
  redis: Redis;
  config: RateLimitConfig;
  /** Without an answer from Redis: 'open' lets the request through (header-less), 'closed' answers 503. */
  failMode: 'open' | 'closed';
  /** How long any call may wait for Redis before failing open/closed (`DOTGIT_GATEWAY_REDIS_TIMEOUT_MS`). Default 100 ms. */
  timeoutMs?: number;
  /** Told about each Redis failure (for logging); the limiter has already counted it. */
  onRedisFailure?: (err: unknown) => void;
}

export interface RateCheckInput {
  method: string;
  /** Path without the query (express `req.path`). */
  path: string;
  query?: QueryInput;
  /** From `subjectFor`: `token:<id>` or `ip:<address>`. */
  subject: string;
  /** Tenant name of the authenticated caller, for per-tenant overrides. */
  tenant?: string;
  /** The caller's revocation tombstone (`revokedTokenKey`): checked in the same round trip. */
  revocationKey?: string;
  /**
   * Check without counting; the caller counts with the decision's `count` once it knows the answer
   * was not a 401. For anonymous requests: git's credential-less probe of a private repository is
   * answered 401 and must not spend the address's limit. Classes with a bucket count at once.
   */
  deferCount?: boolean;
}

export interface RateDecision {
  allowed: boolean;
  /** To set on the response, allowed or not (RateLimit-Policy, RateLimit, and Retry-After when refused). */
  headers: Record<string, string>;
  status?: 429 | 503;
  message?: string;
  /** The revocation key exists: the credential was revoked (nothing was counted). */
  revoked?: boolean;
  /** Redis did not answer: the limit was not applied, nor was revocation checked. */
  unchecked?: boolean;
  /** With `deferCount`: records this request against the limit (bounded like every call; never throws). */
  count?: () => Promise<void>;
}

/** Raised when Redis has not answered within the timeout (the command may still complete later). */
export class RateLimitTimeoutError extends Error {
  constructor(ms: number) {
    super(`rate-limit check got no answer from Redis within ${ms} ms`);
    this.name = 'RateLimitTimeoutError';
  }
}

/**
 * Decides whether a request may proceed under its route class's limits: a sliding window always,
 * and a leaky bucket for classes that configure one, both checked and recorded in one atomic
 * script (a refusal by either consumes neither). One Redis round trip per request; state in Redis,
 * so every gateway instance shares the limits. Requests outside any route class are not limited.
 */
export class RateLimiter {
  private readonly timeoutMs: number;

  constructor(private readonly o: RateLimiterOptions) {
    this.timeoutMs = o.timeoutMs ?? 100;
  }

  async check(input: RateCheckInput): Promise<RateDecision> {
    const cls = routeClass(input.method, input.path, input.query);
    if (!cls) return input.revocationKey ? this.revocationOnly(input.revocationKey) : { allowed: true, headers: {} };
    const limits = limitsFor(this.o.config, cls, input.tenant);
    const deferred = input.deferCount === true && !limits.bucket && !input.revocationKey;
    let result: { allowed: boolean; window: LimitResult; bucket?: LimitResult };
    try {
      result = await withTimeout(deferred ? this.peek(cls, limits, input.subject) : this.evaluate(cls, limits, input.subject, input.revocationKey), this.timeoutMs);
    } catch (err) {
      if (err instanceof CredentialRevokedError) return REVOKED;
      return this.unavailable(err);
    }
    const headers = rateLimitHeaders(cls, limits, result.window, result.bucket);
    if (result.allowed) {
      allowed.inc({ class: cls });
      return deferred ? { allowed: true, headers, count: () => this.record(cls, limits, input.subject) } : { allowed: true, headers };
    }

    refusals.inc({ class: cls });
    const refused: string[] = [];
    let retryMs = 0;
    if (!result.window.allowed) {
      refused.push(`${limits.window.limit} requests per ${limits.window.windowMs / 1000} s`);
      retryMs = Math.max(retryMs, result.window.retryAfterMs);
    }
    if (limits.bucket && result.bucket && !result.bucket.allowed) {
      refused.push(`bursts of ${limits.bucket.capacity} requests draining at ${limits.bucket.ratePerSecond} per second ("${burstPolicyName(cls)}")`);
      retryMs = Math.max(retryMs, result.bucket.retryAfterMs);
    }
    const retryAfter = retryAfterSeconds(retryMs);
    return {
      allowed: false,
      status: 429,
      headers: { ...headers, 'Retry-After': String(retryAfter) },
      message: `rate limit exceeded for ${cls}: ${refused.join(' and ')}; retry in ${retryAfter} s`,
    };
  }

  private async evaluate(cls: RouteClass, limits: ClassLimits, subject: string, revocationKey?: string) {
    const windowKey = rateLimitKey('window', cls, subject);
    if (!limits.bucket) {
      const window = await slidingWindow(this.o.redis, windowKey, limits.window, undefined, revocationKey);
      return { allowed: window.allowed, window };
    }
    return windowAndBucket(this.o.redis, { window: windowKey, bucket: rateLimitKey('bucket', cls, subject) }, { window: limits.window, bucket: limits.bucket }, undefined, revocationKey);
  }

  /**
   * Brute-force protection, asked before a credential is checked (an API token the gateway has not
   * cached, a JWT): refused with 429 while the client address has used up its failed
   * authentications (`authFailures`), so guessing stops being answered at all. Records nothing.
   */
  async authFailureGate(address: string | undefined): Promise<RateDecision> {
    const limit = this.o.config.authFailures;
    let result: LimitResult;
    try {
      result = await withTimeout(slidingWindowPeek(this.o.redis, rateLimitKey('window', 'auth-failure', subjectOfAddress(address)), limit), this.timeoutMs);
    } catch (err) {
      return this.unavailable(err);
    }
    if (result.allowed) return { allowed: true, headers: {} };
    refusals.inc({ class: 'auth-failure' });
    const retryAfter = retryAfterSeconds(result.retryAfterMs);
    return {
      allowed: false,
      status: 429,
      headers: { 'Retry-After': String(retryAfter) },
      message: `too many failed authentications from this address (${limit.limit} per ${limit.windowMs / 1000} s); credentials are not checked for ${retryAfter} s`,
    };
  }

  /** Counts one failed authentication against the client address; a Redis failure only loses the count. */
  async recordAuthFailure(address: string | undefined): Promise<void> {
    const key = rateLimitKey('window', 'auth-failure', subjectOfAddress(address));
    await withTimeout(slidingWindow(this.o.redis, key, this.o.config.authFailures), this.timeoutMs).catch((err: unknown) => this.lostCount(err));
  }

  private async peek(cls: RouteClass, limits: ClassLimits, subject: string) {
    const window = await slidingWindowPeek(this.o.redis, rateLimitKey('window', cls, subject), limits.window);
    return { allowed: window.allowed, window };
  }

  private async record(cls: RouteClass, limits: ClassLimits, subject: string): Promise<void> {
    await withTimeout(slidingWindow(this.o.redis, rateLimitKey('window', cls, subject), limits.window), this.timeoutMs).catch((err: unknown) => this.lostCount(err));
  }

  /** A count that Redis did not take: only that count is lost (the request was already answered). */
  private lostCount(err: unknown): void {
    redisFailures.inc({ reason: err instanceof RateLimitTimeoutError ? 'timeout' : 'error', mode: 'open' });
    this.o.onRedisFailure?.(err);
  }

  /** A request outside every route class still gets its revocation checked (one EXISTS). */
  private async revocationOnly(key: string): Promise<RateDecision> {
    try {
      return (await withTimeout(this.o.redis.exists(key), this.timeoutMs)) ? REVOKED : { allowed: true, headers: {} };
    } catch (err) {
      return this.unavailable(err);
    }
  }

  private unavailable(err: unknown): RateDecision {
    redisFailures.inc({ reason: err instanceof RateLimitTimeoutError ? 'timeout' : 'error', mode: this.o.failMode });
    this.o.onRedisFailure?.(err);
    if (this.o.failMode === 'open') return { allowed: true, headers: {}, unchecked: true };
    return { allowed: false, status: 503, headers: { 'Retry-After': '1' }, message: 'rate limiting is unavailable (Redis did not answer); retry shortly', unchecked: true };
  }
}

const subjectOfAddress = (address: string | undefined) => subjectFor(null, address);

const REVOKED: RateDecision = { allowed: false, revoked: true, headers: {} };

/**
 * `p`, or a RateLimitTimeoutError after `ms`: a slow or unreachable Redis (a command sitting in
 * ioredis's offline queue, a half-open TCP connection) must never hold a request.
 */
function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return withDeadline(p, ms, () => new RateLimitTimeoutError(ms));
}
