import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { freePort } from '../../infra/provision/free-port';
import { LIMITS_OUT_OF_THE_WAY } from '../../infra/own-platform-env';
import { platformInfo } from '../harness/platform-info';
import { tempDir } from './git';

/**
 * Real service processes of a test's own (git-server, api, worker, gateway `main.ts`) on the shared
 * test platform's Postgres, Redis and Temporal: for what only a separate process shows (its own
 * configuration, being stopped or killed, draining).
 */

const ROOT = path.resolve(__dirname, '..', '..');

export interface OwnService {
  child: ChildProcess;
  port: number;
  /** How it ended (resolves once it has). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The last 20 000 characters it wrote (stdout and stderr), for failure messages. */
  output: () => string;
}

/** Every service this test file started (jest gives each file its own module registry). */
const started: ChildProcess[] = [];

/**
 * Starts `entry` with the platform's connection settings and `env` on top, and waits (up to 90 s)
 * until it answers /healthz on `port`. It runs in a process group of its own, so that
 * `stopService` reaches its git children too. `onStdout` sees each chunk it writes to stdout.
 */
export async function startService(entry: string, port: number, env: NodeJS.ProcessEnv, o: { onStdout?: (chunk: Buffer) => void } = {}): Promise<OwnService> {
  const info = platformInfo();
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, entry)], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DATABASE_URL: info.databaseUrl,
      REDIS_URL: info.redisUrl,
      TEMPORAL_ADDRESS: info.temporalAddress,
      TEMPORAL_NAMESPACE: info.namespace,
      DOTGIT_INTERNAL_SECRET: info.internalSecret,
      DOTGIT_PUBLIC_URL: info.gatewayUrl,
      // As on the platform's gateway: the limits' counters live in the shared Redis, where other
      // suites' traffic from 127.0.0.1 (hundreds of bad credentials from the hostile-input suite)
      // would otherwise make a gateway of a test's own refuse its client (seen in CI).
      DOTGIT_RATE_LIMITS: LIMITS_OUT_OF_THE_WAY,
      LOG_LEVEL: 'info',
      ...env,
    },
  });
  started.push(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out = (out + d).slice(-20_000);
    o.onStdout?.(d);
  });
  child.stderr!.on('data', (d) => (out = (out + d).slice(-20_000)));
  const deadline = Date.now() + 90_000;
  for (;;) {
    const ok = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false);
    if (ok) return { child, port, exited, output: () => out };
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${entry} on ${port} did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * A git-server as storage node `id` with its own data dir (no drain: a stop here is a kill).
 * Restarting a stopped node: the same id, dir and port again.
 */
export function startNode(id: string, dataDir: string, port: number): Promise<OwnService> {
  return startService('git-server/main.ts', port, { DOTGIT_DATA_DIR: dataDir, DOTGIT_GIT_PORT: String(port), DOTGIT_NODE_ID: id, DOTGIT_DRAIN_SECONDS: '0' });
}

function killGroup(child: ChildProcess): void {
  try {
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Kills the service and its children (SIGKILL to its process group); resolves once it has exited. */
export async function stopService(s: OwnService): Promise<void> {
  killGroup(s.child);
  await s.exited;
}

/** For afterAll: kills every service this file started that still runs, with its children. */
export function killAllServices(): void {
  for (const child of started) killGroup(child);
}

/** Ids and data dirs for two storage nodes of a test's own (ids unique to the run: nodes register in the shared Postgres). */
export function ownNodePair(dirPrefix: string): { N1: string; N2: string; dirs: { n1: string; n2: string } } {
  const suffix = randomBytes(3).toString('hex');
  return { N1: `n1-${suffix}`, N2: `n2-${suffix}`, dirs: { n1: tempDir(`${dirPrefix}n1-`), n2: tempDir(`${dirPrefix}n2-`) } };
}

/**
 * Starts the pair's two git-servers and an api configured with just those two
 * (DOTGIT_GIT_UPSTREAMS): that api places repositories on them alone, and the platform's api never
 * does, so no other suite's repository lands on a node the test stops. `apiEnv` adds to the api's settings.
 */
export async function startNodesWithApi(pair: ReturnType<typeof ownNodePair>, apiEnv: NodeJS.ProcessEnv = {}): Promise<[OwnService, OwnService, OwnService]> {
  const [p1, p2, pApi] = [await freePort(), await freePort(), await freePort()];
  const [n1, n2] = await Promise.all([startNode(pair.N1, pair.dirs.n1, p1), startNode(pair.N2, pair.dirs.n2, p2)]);
  const api = await startService('api/main.ts', pApi, {
    DOTGIT_DATA_DIR: platformInfo().dataDir,
    DOTGIT_API_PORT: String(pApi),
    DOTGIT_DRAIN_SECONDS: '0',
    DOTGIT_GIT_UPSTREAMS: `http://127.0.0.1:${p1},http://127.0.0.1:${p2}`,
    ...apiEnv,
  });
  return [n1, n2, api];
}
