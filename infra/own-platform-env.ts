/**
 * The environment of a platform of its own, as tests and benches start one: a fresh data dir and
 * embedded Postgres, Redis and Temporal (the `DATABASE_URL`, `REDIS_URL` and `TEMPORAL_ADDRESS` of
 * the caller's shell are cleared), plus whatever the caller adds.
 */
export function ownPlatformEnv(dataDir: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, DOTGIT_DATA_DIR: dataDir, DATABASE_URL: '', REDIS_URL: '', TEMPORAL_ADDRESS: '', LOG_LEVEL: process.env.LOG_LEVEL ?? 'info', ...extra };
}

/**
 * `DOTGIT_RATE_LIMITS` that never get in the way of load (50 concurrent pushes, hundreds of
 * clones on one token); the limits themselves are tested on gateways of their own.
 */
export const LIMITS_OUT_OF_THE_WAY = JSON.stringify({
  ...Object.fromEntries(['api-read', 'api-write', 'git-fetch', 'git-push'].map((c) => [c, { window: { limit: 1_000_000, windowMs: 60_000 }, bucket: null }])),
  // Hostile-input suites send hundreds of bad credentials from 127.0.0.1.
  'auth-failure': { window: { limit: 1_000_000, windowMs: 60_000 } },
});
