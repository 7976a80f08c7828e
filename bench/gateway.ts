/**
 * The gateway benchmark of issue 4: the same authenticated, rate-limited GET through the gateway and
 * straight at its upstream (the api service, with the signed identity header the gateway would add),
 * under the same closed-loop load, in the same run; and, as the bound of what any Node hop can reach
 * on the machine (issue 16 item 4), the direct request through a bare Node reverse proxy
 * (bench/bare-proxy.cjs: no logic at all). Besides latency and throughput it counts, per request,
 * the Redis commands (client round trips and the commands run inside Lua scripts) and the Postgres
 * transactions each path causes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { createDb } from '../core/db';
import { IDENTITY_HEADER, signIdentity } from '../core/internal-identity';
import { createRedis, type Redis } from '../core/redis';
import type { Platform } from '../infra/platform';
import type { ProvisionLog } from '../infra/provision/log';
import { principalForToken } from '../gateway/token-auth';
import { sleep } from './lib';
import { LoadGenerator, type LoadResult } from './load';
import { childrenOf, cpuMs, cpuTicks } from './proc';
import { ensureWrk } from './wrk';

/** Connections and length of the loaded run. */
export const GW_CONNECTIONS = 16;
export const GW_DURATION_MS = 10_000;
/** Warm-up at full concurrency, then a timed run at one connection: the hop's cost without queueing. */
export const GW_WARMUP_MS = 2_000;
export const GW_SINGLE_MS = 5_000;
/** Sequential requests per side while Redis MONITOR tells client commands from in-script ones. */
export const GW_MONITOR_REQUESTS = 200;
/**
 * Idle time before each Postgres snapshot. A backend reports its transaction counts to
 * pg_stat_database at most once a second while busy and holds the rest until it has been idle for
 * 10 s (PGSTAT_IDLE_INTERVAL) or exits (pg's pool closes clients idle for 10 s); after 11 s of no
 * traffic every transaction of the window before has been counted.
 */
export const GW_SETTLE_MS = 11_000;
/** The goals of issue 4. */
export const GOAL_ADDED_P50_MS = 1;
export const GOAL_THROUGHPUT_RATIO = 0.5;
export const GOAL_REDIS_ROUND_TRIPS = 1;
/** Issue 16's goal for the same throughput ratio. */
export const GOAL_THROUGHPUT_RATIO_LEAN = 0.8;

export interface CountWindow {
  /** Requests sent by the load runs in the window (warm-up, loaded, single). */
  requests: number;
  seconds: number;
  /** pg_stat_database xact_commit + xact_rollback of the platform's database over the window. */
  pgXacts: number;
  /** INFO commandstats calls over the window, by command (INFO itself left out). */
  redisCalls: Record<string, number>;
}

export interface MonitorSample {
  requests: number;
  /** Commands sent by clients (each one round trip), by command. */
  client: Record<string, number>;
  /** Commands run inside Lua scripts (no round trip of their own), by command. */
  script: Record<string, number>;
}

/** Processes whose CPU is read around the loaded run. */
export interface GatewayPids {
  gateway: number;
  api: number;
  postgres?: number;
  redis?: number;
}

/**
 * CPU milliseconds used during the loaded run, by process (Postgres: the postmaster and all its
 * backends). `gateway` is the hop's process: the gateway, or the bare proxy on that side.
 */
export type CpuSplit = Record<'gateway' | 'api' | 'postgres' | 'redis' | 'client', number>;

export interface GatewaySide {
  warmup: LoadResult;
  loaded: LoadResult;
  single: LoadResult;
  window: CountWindow;
  monitor: MonitorSample;
  cpu: CpuSplit;
  /** One GET right after the loaded run ended, and one after the settle (status and error code). */
  probeAfterLoad: Probe;
  probeAfterSettle: Probe;
}

export interface Probe {
  status: number;
  /** `error.code` of a JSON error answer. */
  code?: string;
  ms: number;
}

export interface GatewayBench {
  tool: string;
  path: string;
  principal: string;
  /** The RateLimit-Policy and RateLimit fields of a gateway answer (proof that the limiter ran). */
  rateLimitFields: string;
  gateway: GatewaySide;
  direct: GatewaySide;
  /** The direct request through the bare Node proxy: what a hop without logic costs. */
  bare: GatewaySide;
}

export const sum = (r: Record<string, number>) => Object.values(r).reduce((n, x) => n + x, 0);

export async function measureGateway(o: {
  platform: Platform;
  token: string;
  owner: string;
  repo: string;
  scratch: string;
  pids: GatewayPids;
  log: ProvisionLog;
  progress: (msg: string) => void;
}): Promise<GatewayBench> {
  const { platform, progress } = o;
  const wrk = await ensureWrk(o.log);
  const load = new LoadGenerator(wrk, o.scratch);
  progress(`gateway: load generator ${load.tool}`);

  const apiPath = `/api/v1/repos/${encodeURIComponent(o.owner)}/${encodeURIComponent(o.repo)}`;
  const gatewayUrl = `${platform.gatewayUrl}${apiPath}`;
  const directUrl = `http://${platform.serviceEnv.DOTGIT_INTERNAL_HOST || '127.0.0.1'}:${platform.serviceEnv.DOTGIT_API_PORT}${apiPath}`;
  const secret = platform.serviceEnv.DOTGIT_INTERNAL_SECRET!;
  // The principal the gateway itself derives from the token, so both paths do the same work upstream.
  const db = createDb(platform.databaseUrl, 1);
  const principal = await principalForToken(db, o.token).finally(() => db.end());
  const gatewayHeaders = () => Promise.resolve({ authorization: `Bearer ${o.token}` });
  // The identity is valid for 60 s: signed afresh for every run.
  const directHeaders = async () => ({ [IDENTITY_HEADER]: await signIdentity(secret, principal, 'bench-gateway-direct') });

  // Both paths answer 200 with the same body; the gateway's answer carries the limiter's fields.
  const viaGateway = await fetch(gatewayUrl, { headers: await gatewayHeaders() });
  const viaDirect = await fetch(directUrl, { headers: await directHeaders() });
  const [gBody, dBody] = [await viaGateway.text(), await viaDirect.text()];
  if (viaGateway.status !== 200 || viaDirect.status !== 200) throw new Error(`GET ${apiPath}: gateway ${viaGateway.status}, direct ${viaDirect.status}: ${gBody} ${dBody}`);
  if (JSON.stringify(JSON.parse(gBody)) !== JSON.stringify(JSON.parse(dBody))) throw new Error(`GET ${apiPath} answers differently through the gateway: ${gBody} vs ${dBody}`);
  const policy = viaGateway.headers.get('ratelimit-policy');
  if (!policy) throw new Error(`the gateway's answer has no RateLimit-Policy field: is the limiter running?`);
  const rateLimitFields = `RateLimit-Policy: ${policy}; RateLimit: ${viaGateway.headers.get('ratelimit') ?? '—'}`;

  const bareProxy = await startBareProxy(`http://${platform.serviceEnv.DOTGIT_INTERNAL_HOST || '127.0.0.1'}:${platform.serviceEnv.DOTGIT_API_PORT}`);
  const bareUrl = `${bareProxy.url}${apiPath}`;
  const viaBare = await fetch(bareUrl, { headers: await directHeaders() });
  const bBody = await viaBare.text();
  if (viaBare.status !== 200 || JSON.stringify(JSON.parse(bBody)) !== JSON.stringify(JSON.parse(dBody))) throw new Error(`GET ${apiPath} through the bare proxy: ${viaBare.status} ${bBody}`);

  const redis = createRedis(platform.redisUrl);
  try {
    // 1. Which Redis commands are round trips: MONITOR shows client commands with the client's
    //    address and the commands a script runs with the source "lua". Untimed.
    const monitorSample = async (url: string, headers: () => Promise<Record<string, string>>): Promise<MonitorSample> => {
      const monitor = await redis.monitor();
      const client: Record<string, number> = {};
      const script: Record<string, number> = {};
      monitor.on('monitor', (_time: string, args: string[], source: string) => {
        const cmd = String(args[0] ?? '?').toLowerCase();
        const into = source === 'lua' ? script : client;
        into[cmd] = (into[cmd] ?? 0) + 1;
      });
      try {
        const h = await headers();
        for (let i = 0; i < GW_MONITOR_REQUESTS; i++) {
          const res = await fetch(url, { headers: h });
          await res.arrayBuffer();
          if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status} during the MONITOR sample`);
        }
        await sleep(300); // the last commands' MONITOR lines
      } finally {
        monitor.disconnect();
      }
      return { requests: GW_MONITOR_REQUESTS, client, script };
    };
    progress(`gateway: Redis MONITOR over ${GW_MONITOR_REQUESTS} sequential requests per side`);
    const monitorDirect = await monitorSample(directUrl, directHeaders);
    const monitorGateway = await monitorSample(gatewayUrl, gatewayHeaders);
    const monitorBare = await monitorSample(bareUrl, directHeaders);

    // 2. The timed runs, each side inside a window of settled counters.
    const snapshot = async () => ({ at: Date.now(), pg: await pgXacts(platform.databaseUrl), redis: await commandCalls(redis) });
    // `hopPid`: the process in front of the api on this side (its CPU is reported as `gateway`).
    const side = async (name: string, url: string, headers: () => Promise<Record<string, string>>, monitor: MonitorSample, hopPid = o.pids.gateway): Promise<GatewaySide> => {
      const pids = { ...o.pids, gateway: hopPid };
      const before = await snapshot();
      // wrk ends a run by closing its connections with requests in flight, and the gateway counts
      // each such client abort as a failure of the upstream: 5 in a row open its circuit breaker to
      // the api for 10 s (see the probes). So the warm-up at full concurrency is the Node generator,
      // which lets its last requests finish; then the 1-connection run (one abort at its end, which
      // opens nothing); the loaded run last.
      const warmup = await load.run({ url, headers: await headers(), connections: GW_CONNECTIONS, durationMs: GW_WARMUP_MS }, { graceful: true });
      const single = await load.run({ url, headers: await headers(), connections: 1, durationMs: GW_SINGLE_MS });
      const h = await headers();
      const cpuBefore = cpuOf(pids, Boolean(wrk));
      const loaded = await load.run({ url, headers: h, connections: GW_CONNECTIONS, durationMs: GW_DURATION_MS });
      const cpuAfter = cpuOf(pids, Boolean(wrk));
      const cpu = Object.fromEntries(Object.entries(cpuAfter).map(([k, v]) => [k, v - cpuBefore[k as keyof CpuSplit]])) as CpuSplit;
      // The same GET once more, right after the load generator went away.
      const probeAfterLoad = await probe(url, await headers());
      progress(
        `gateway: ${name}: ${GW_CONNECTIONS} connections ${loaded.rps.toFixed(0)} req/s, p50 ${loaded.p50Ms.toFixed(2)} ms, p99 ${loaded.p99Ms.toFixed(2)} ms, non-2xx ${loaded.non2xx}; ` +
          `1 connection p50 ${single.p50Ms.toFixed(2)} ms; settling ${GW_SETTLE_MS / 1000} s for the counters`,
      );
      await sleep(GW_SETTLE_MS);
      const after = await snapshot();
      // After the settle a breaker opened by the load's end is half-open: this request closes it again.
      const probeAfterSettle = await probe(url, await headers());
      const redisCalls: Record<string, number> = {};
      for (const [cmd, n] of Object.entries(after.redis)) {
        const d = n - (before.redis[cmd] ?? 0);
        if (d > 0 && cmd !== 'info') redisCalls[cmd] = d;
      }
      return {
        warmup,
        loaded,
        single,
        monitor,
        cpu,
        probeAfterLoad,
        probeAfterSettle,
        window: {
          requests: warmup.requests + loaded.requests + single.requests + 1,
          seconds: (after.at - before.at) / 1000,
          // The snapshot's own query is one transaction of the window it opens.
          pgXacts: after.pg - before.pg - 1,
          redisCalls,
        },
      };
    };
    progress(`gateway: settling ${GW_SETTLE_MS / 1000} s, then GET ${apiPath} straight at the api, through the bare proxy, then through the gateway`);
    await sleep(GW_SETTLE_MS);
    const direct = await side('direct', directUrl, directHeaders, monitorDirect);
    const bare = await side('bare proxy', bareUrl, directHeaders, monitorBare, bareProxy.pid);
    const gateway = await side('gateway', gatewayUrl, gatewayHeaders, monitorGateway);
    return {
      tool: load.tool,
      path: apiPath,
      principal: `${principal.username} (tenant ${principal.tenantName}, token ${principal.tokenId})`,
      rateLimitFields,
      gateway,
      direct,
      bare,
    };
  } finally {
    redis.disconnect();
    bareProxy.stop();
  }
}

/** Starts bench/bare-proxy.cjs in front of `upstream` (its own process, so its CPU is its own). */
async function startBareProxy(upstream: string): Promise<{ url: string; pid: number; stop: () => void }> {
  const child: ChildProcess = spawn(process.execPath, [path.join(__dirname, 'bare-proxy.cjs'), upstream], {
    env: { ...process.env, NODE_OPTIONS: '' },
    stdio: ['pipe', 'pipe', 'inherit'], // stdin: its lifeline (it exits when we do)
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the bare proxy exited with ${code} before listening`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /^BARE_PROXY_PORT (\d+)$/.exec(line);
      if (m) resolve(Number(m[1]));
    });
  });
  return { url: `http://127.0.0.1:${port}`, pid: child.pid!, stop: () => void child.kill('SIGTERM') };
}

async function probe(url: string, headers: Record<string, string>): Promise<Probe> {
  const started = performance.now();
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(text) as { error?: { code?: string } }).error?.code;
  } catch {
    // not JSON
  }
  return { status: res.status, code, ms: performance.now() - started };
}

/**
 * CPU milliseconds so far of each process, from /proc/<pid>/stat. Postgres: the postmaster with its
 * reaped children plus every live backend (a backend that exits moves from one to the other, a new
 * one starts at 0). The client: wrk is our child, counted once reaped (cutime of this process); the
 * Node generator runs in this process (its utime+stime).
 */
function cpuOf(pids: GatewayPids, clientIsChild: boolean): CpuSplit {
  const own = (pid: number | undefined) => {
    if (!pid) return NaN;
    try {
      return cpuMs(cpuTicks(pid));
    } catch {
      return NaN;
    }
  };
  const alone = (pid: number) => {
    try {
      return cpuMs({ ...cpuTicks(pid), cutime: 0, cstime: 0 });
    } catch {
      return 0; // gone meanwhile
    }
  };
  const self = cpuTicks(process.pid);
  return {
    gateway: own(pids.gateway),
    api: own(pids.api),
    postgres: pids.postgres ? own(pids.postgres) + childrenOf(pids.postgres).reduce((n, c) => n + alone(c), 0) : NaN,
    redis: own(pids.redis),
    client: clientIsChild ? cpuMs({ utime: 0, stime: 0, cutime: self.cutime, cstime: self.cstime }) : cpuMs({ ...self, cutime: 0, cstime: 0 }),
  };
}

/** Committed and rolled-back transactions of the platform's database so far (a fresh connection each time). */
async function pgXacts(databaseUrl: string): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const r = await client.query<{ n: string }>('SELECT (xact_commit + xact_rollback)::text AS n FROM pg_stat_database WHERE datname = current_database()');
    return Number(r.rows[0]?.n ?? NaN);
  } finally {
    await client.end();
  }
}

/** `calls` of every command in INFO commandstats. */
async function commandCalls(redis: Redis): Promise<Record<string, number>> {
  const text = await redis.info('commandstats');
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^cmdstat_(\S+?):calls=(\d+)/gm)) out[m[1]!] = Number(m[2]);
  return out;
}
