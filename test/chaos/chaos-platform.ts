import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Pool } from 'pg';
import { RunscDriver } from '../../activities/sandbox/runsc-driver';
import { unmountAllUnder } from '../../activities/workspace';
import { LIMITS_OUT_OF_THE_WAY, ownPlatformEnv } from '../../infra/own-platform-env';
import { startPlatform, ROOT, type Platform } from '../../infra/platform';

/**
 * The chaos suite's own platform (never the shared one of the other suites: its parts get killed),
 * one tenant with a read/write/admin token, a Postgres pool to check invariants with, and a thin
 * HTTP client of its gateway.
 */
export interface ChaosPlatform {
  platform: Platform;
  dataDir: string;
  tenant: string;
  tenantId: number;
  token: string;
  db: Pool;
  call<T = any>(method: string, p: string, body?: unknown, opts?: { timeoutMs?: number }): Promise<{ status: number; body: T; text: string }>;
  /** Clone URL of a repository of the tenant, with the token. */
  cloneUrl(repo: string): string;
  /** The bare repository on disk. */
  repoDir(repo: string): string;
}

const log = { info: () => undefined, debug: () => undefined, warn: (m: string) => console.warn(`[chaos platform] ${m}`) };

export async function startChaosPlatform(label: string): Promise<ChaosPlatform> {
  const dataDir = path.join(ROOT, '.test-data', `chaos-${label}-${process.pid}`);
  await fs.rm(dataDir, { recursive: true, force: true });
  const platform = await startPlatform({
    env: ownPlatformEnv(dataDir, { DOTGIT_RATE_LIMITS: LIMITS_OUT_OF_THE_WAY, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' }),
    log,
    ephemeral: true,
  });
  const tenant = 'chaos';
  let token = platform.adminToken;
  const call: ChaosPlatform['call'] = async (method, p, body, opts = {}) => {
    const res = await fetch(`${platform.gatewayUrl}${p}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
    });
    const text = await res.text();
    return { status: res.status, text, body: (res.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) : text };
  };
  const must = async (what: string, answer: Promise<{ status: number; text: string; body: any }>, status: number) => {
    const a = await answer;
    if (a.status !== status) throw new Error(`${what}: ${a.status} ${a.text}`);
    return a.body;
  };
  await must('tenant', call('POST', '/api/v1/tenants', { name: tenant }), 201);
  await must('user', call('POST', `/api/v1/tenants/${tenant}/users`, { username: 'chaos-admin', role: 'admin' }), 201);
  token = (await must('token', call('POST', '/api/v1/tokens', { username: 'chaos-admin', scopes: ['read', 'write', 'admin'] }), 201)).token;
  const db = new Pool({ connectionString: platform.databaseUrl, max: 3 });
  // Postgres is restarted by a drill: a pooled connection it ends must not crash the test process.
  db.on('error', () => undefined);
  const tenantId = Number((await db.query('SELECT id FROM tenants WHERE name = $1', [tenant])).rows[0].id);
  return {
    platform,
    dataDir,
    tenant,
    tenantId,
    token,
    db,
    call,
    cloneUrl: (repo) => {
      const u = new URL(`${platform.gatewayUrl}/${tenant}/${repo}.git`);
      u.username = 'x';
      u.password = token;
      return u.toString();
    },
    repoDir: (repo) => path.join(dataDir, 'repos', tenant, `${repo}.git`),
  };
}

export async function stopChaosPlatform(cp: ChaosPlatform | undefined): Promise<void> {
  if (!cp) return;
  await cp.db.end().catch(() => undefined);
  await cp.platform.stop();
  // runsc pins a network namespace under its state dir; unmount it or the removal fails with EBUSY.
  await RunscDriver.releaseState(path.join(cp.dataDir, 'sandbox'));
  // A job's tmpfs workspace outlives a worker killed mid-job.
  await unmountAllUnder(cp.dataDir);
  await fs.rm(cp.dataDir, { recursive: true, force: true });
}
