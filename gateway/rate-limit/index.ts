// The gateway's rate limiting: import from here.
export { RateLimiter, RateLimitTimeoutError, type RateCheckInput, type RateDecision, type RateLimiterOptions } from './rate-limiter';
export {
  DEFAULT_CLASS_LIMITS, limitsFor, parseRateLimitConfig, rateLimitConfigSchema, rateLimitKey, ROUTE_CLASSES, routeClass, subjectFor,
  type ClassLimits, type QueryInput, type RateLimitConfig, type RateLimitConfigInput, type RouteClass,
} from './policy';
export { rateLimitHeaders, retryAfterSeconds } from './headers';
export { slidingWindow, type SlidingWindowLimit } from './sliding-window';
export { leakyBucket, type LeakyBucketLimit } from './leaky-bucket';
export { windowAndBucket } from './window-and-bucket';
export type { LimitResult } from './lua-script';
