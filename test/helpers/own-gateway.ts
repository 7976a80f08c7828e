import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type express from 'express';
import pino from 'pino';
import type { Db } from '../../core/db';
import { createGatewayApp } from '../../gateway/app';
import { parseRateLimitConfig, type RateLimitConfig, type RateLimitConfigInput, type RateLimiter } from '../../gateway/rate-limit';
import { platformInfo } from '../harness/platform-info';
import { createPrivateRepo, type TenantFixture } from './api-client';
import { cloneUrl, cloneUrlAt, git, localRepo } from './git';

/**
 * A gateway of a test's own, in-process, in front of the platform's real api and git-server: for
 * limits and Redis behaviour the shared gateway (limits out of the way, the platform's Redis) cannot show.
 */
export async function startOwnGateway(db: Db, limiter: RateLimiter, o: { issuer?: express.Router } = {}): Promise<{ base: string; close(): void }> {
  const p = platformInfo();
  const app = createGatewayApp({
    db,
    log: pino({ level: 'silent' }),
    internalSecret: p.internalSecret,
    upstreams: { api: new URL(`http://127.0.0.1:${p.apiPort}`), git: new URL(`http://127.0.0.1:${p.gitPort}`) },
    limiter,
    issuer: o.issuer,
    healthChecks: {},
  });
  const server = http.createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

/**
 * Limits for a test's own gateway: `input`, with brute-force protection out of the way. Counters
 * live in the platform's shared Redis, and the hostile-input suites leave hundreds of failed
 * authentications from 127.0.0.1 there, which the default `auth-failure` limit (20/min) would
 * answer with 429 before any limit under test is reached.
 */
export function ownLimits(input: RateLimitConfigInput = {}): RateLimitConfig {
  return parseRateLimitConfig({ 'auth-failure': { window: { limit: 1_000_000, windowMs: 60_000 } }, ...input });
}

/** The clone URL of `owner/repo` through the gateway at `base`, with the token as HTTP Basic password. */
export function cloneUrlVia(base: string, owner: string, repo: string, token?: string): string {
  return cloneUrlAt(base, owner, repo, token);
}

/** A private repository of `owner`'s tenant with one commit on main, pushed through the platform's gateway. */
export async function seededPrivateRepo(owner: TenantFixture, prefix: string): Promise<string> {
  const repo = await createPrivateRepo(owner, prefix);
  const src = await localRepo({ 'README.md': `${prefix}\n` });
  const seeded = await git(['push', '-q', cloneUrl(owner.tenant, repo, owner.token), 'main'], src);
  if (seeded.code !== 0) throw new Error(seeded.stderr);
  return repo;
}
