/**
 * Issue 11's figure "sandbox scaling" (`BENCH_ONLY=fleet`; also part of the full `npm run bench`),
 * on a platform of its own whose worker runs orchestration and storage only:
 *
 *   1, 2 and 4 sandbox-only worker processes (each its own host id and data dir,
 *   DOTGIT_SANDBOX_CONCURRENCY = BENCH_FLEET_SLOTS, default 2) start and poll, then
 *   BENCH_FLEET_RUNS (default 300) one-step runs (`sleep 1`) are queued (far faster than they drain).
 *
 * Throughput = runs ÷ (last run finished − first step started), from the runs' and steps' own
 * timestamps in Postgres, so the hosts' start-up is not counted. Scaling efficiency at N hosts =
 * throughput(N) ÷ (N × throughput(1)), the peer being the one-host drain of the same run. The
 * machine's CPU use over each drain (from /proc/stat) says what bounds it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { hostQueue, SANDBOX_QUEUE } from '../core/run-types';
import { RunscDriver } from '../activities/sandbox/runsc-driver';
import { LIMITS_OUT_OF_THE_WAY, ownPlatformEnv } from '../infra/own-platform-env';
import { ROOT, startPlatform, type Platform } from '../infra/platform';
import { IDENTITY_HEADER, signIdentity } from '../core/internal-identity';
import { startChild } from '../infra/provision/child';
import { freePort } from '../infra/provision/free-port';
import { generateRepo, DEFAULT_SHAPE } from './gen-repo';
import { adminPrincipal, Api, benchTenant, fmtBytes, fmtMs, fmtRatio, fmtStats, Git, intEnv, replaceSection, sleep, type Stats, stats } from './lib';

export const FLEET_HEADING = '## Sandbox scaling across hosts (issue 11)';
/** Issue 11's goal at 4 hosts, where the cores allow. */
const GOAL_EFFICIENCY = 0.8;
const OWNER = 'bench';
const HOST_COUNTS = [1, 2, 4];

const RUNS = intEnv('BENCH_FLEET_RUNS', 300, 10, 5000);
const SLOTS = intEnv('BENCH_FLEET_SLOTS', 2, 1, 64);
const DRAIN_TIMEOUT_MS = 30 * 60_000;
/** Clone pairs in the cross-node comparison (each pair one clone of each side, alternating order). */
const CLONES = intEnv('BENCH_FLEET_CLONES', 15, 1, 200);
/** Issue 11's goal: a clone through a node that does not hold the repository ÷ a clone from the node that does. */
const GOAL_FORWARDED_RATIO = 1.05;

interface CrossNode {
  packBytes: number;
  direct: Stats;
  forwarded: Stats;
  /** forwarded ÷ direct of each pair: the two clones of a pair ran back to back, under the same load. */
  pairRatios: Stats;
}

interface Drain {
  hosts: number;
  runs: number;
  drainMs: number;
  runsPerSecond: number;
  statuses: Record<string, number>;
  /** Jobs each host ran (steps' `host`). */
  perHost: Record<string, number>;
  /** Share of the machine's CPU time busy during the drain (all cores). */
  cpuBusy: number;
}

/** Busy and total jiffies of all cores, from /proc/stat. */
function cpuJiffies(): { busy: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  const idle = fields[3]! + (fields[4] ?? 0); // idle + iowait
  return { busy: total - idle, total };
}

interface Host {
  id: string;
  child: ChildProcess;
  output: () => string;
}

/** A sandbox-only worker process with its own host id and data dir (the object store is the platform's). */
async function startHost(platform: Platform, id: string, dataDir: string): Promise<Host> {
  await fs.mkdir(dataDir, { recursive: true });
  // Until workspaces come over the network everywhere, the host reads the repositories the platform holds.
  for (const shared of ['repos', 'objects']) {
    const link = path.join(dataDir, shared);
    if (!existsSync(link)) await fs.symlink(path.join(platform.dataDir, shared), link);
  }
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'worker', 'main.ts')], {
    cwd: ROOT,
    env: {
      ...platform.serviceEnv,
      DOTGIT_DATA_DIR: dataDir,
      DOTGIT_WORKER_ROLES: 'sandbox',
      DOTGIT_HOST_ID: id,
      DOTGIT_WORKER_PORT: '0',
      DOTGIT_SANDBOX_CONCURRENCY: String(SLOTS),
      DOTGIT_QUEUE_METRICS_INTERVAL_SECONDS: '0',
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out = (out + d).slice(-20_000)));
  child.stderr!.on('data', (d) => (out = (out + d).slice(-20_000)));
  return { id, child, output: () => out };
}

/** Waits until the host's worker polls the shared sandbox queue and its own (its identity is pid@host). */
async function pollingHost(platform: Platform, h: Host): Promise<void> {
  const connection = await Connection.connect({ address: platform.temporalAddress });
  try {
    const polled = async (queue: string) => {
      const res = await connection.workflowService.describeTaskQueue({
        namespace: platform.namespace,
        taskQueue: { name: queue },
        taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
      });
      return (res.pollers ?? []).some((p) => p.identity?.startsWith(`${h.child.pid}@`));
    };
    const deadline = Date.now() + 120_000;
    while (!((await polled(SANDBOX_QUEUE)) && (await polled(hostQueue(h.id))))) {
      if (h.child.exitCode !== null || Date.now() > deadline) throw new Error(`sandbox host ${h.id} did not start:\n${h.output()}`);
      await sleep(200);
    }
  } finally {
    await connection.close();
  }
}

async function stopHost(h: Host): Promise<void> {
  if (h.child.exitCode !== null || h.child.signalCode !== null) return;
  const exited = new Promise<void>((r) => h.child.once('exit', () => r()));
  h.child.kill('SIGTERM');
  const timer = setTimeout(() => h.child.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(timer);
}

export async function runFleetBench(progress: (m: string) => void): Promise<string> {
  const dataDir = path.join(ROOT, '.bench-data', `fleet-${process.pid}`);
  const scratch = path.join(dataDir, 'bench');
  await fs.rm(dataDir, { recursive: true, force: true });
  await fs.mkdir(path.join(scratch, 'home'), { recursive: true });
  const loadBefore = os.loadavg();
  const started = performance.now();
  progress(`fleet: starting a platform (worker: orchestration and storage only) in ${path.relative(ROOT, dataDir)}`);
  let platform: Platform | undefined;
  const hosts: Host[] = [];
  let client: pg.Client | undefined;
  try {
    platform = await startPlatform({
      env: ownPlatformEnv(dataDir, { DOTGIT_RATE_LIMITS: LIMITS_OUT_OF_THE_WAY, DOTGIT_WORKER_ROLES: 'orchestration,storage' }),
      log: { info: () => undefined, debug: () => undefined, warn: (m: string) => progress(`platform: ${m}`) },
      ephemeral: true,
    });
    const platformStartMs = performance.now() - started;
    const api = new Api(platform.gatewayUrl);
    const token = await benchTenant(api, platform.adminToken, OWNER);
    const git = new Git(path.join(scratch, 'home'));
    const name = 'scaling';
    await api.call('POST', '/api/v1/repos', token, { owner: OWNER, name, visibility: 'private' });
    const work = path.join(scratch, name);
    await git.run(['init', '--quiet', '--initial-branch=main', work]);
    await fs.mkdir(path.join(work, '.dotgit'), { recursive: true });
    await fs.writeFile(path.join(work, '.dotgit', 'pipeline.yml'), 'on:\n  push: { branches: [none] }\njobs:\n  one:\n    steps:\n      - name: sleep\n        run: sleep 1\n');
    await git.run(['add', '-A'], work);
    await git.run(['commit', '--quiet', '-m', 'pipeline'], work);
    await git.run(['push', '--quiet', api.cloneUrl(OWNER, name, token), 'main'], work);
    client = new pg.Client({ connectionString: platform.databaseUrl });
    await client.connect();

    const drains: Drain[] = [];
    for (const count of HOST_COUNTS) {
      progress(`fleet: starting ${count} sandbox host(s), ${SLOTS} job slots each`);
      const round = await Promise.all(Array.from({ length: count }, (_, i) => startHost(platform!, `bench-host-${i + 1}`, path.join(dataDir, 'hosts', `h${i + 1}`))));
      hosts.push(...round);
      // Every host polls before the first run is queued: start-up (CPU-heavy on a small machine) is not part of the drain.
      await Promise.all(round.map((h) => pollingHost(platform!, h)));
      progress(`fleet: queueing ${RUNS} runs`);
      const ids: string[] = [];
      let next = 0;
      const poster = async () => {
        while (next < RUNS) {
          next++;
          ids.push((await api.call<{ id: string }>('POST', `/api/v1/repos/${OWNER}/${name}/runs`, token, { ref: 'main' }, [202])).id);
        }
      };
      await Promise.all(Array.from({ length: 8 }, poster));
      const cpuStart = cpuJiffies();
      const deadline = Date.now() + DRAIN_TIMEOUT_MS;
      let lastReport = 0;
      let drain: Drain | undefined;
      for (;;) {
        const r = await client!.query<{ status: string; n: number; last: Date | null }>(
          `SELECT status, count(*)::int AS n, max(finished_at) AS last FROM runs WHERE id = ANY($1) GROUP BY status`,
          [ids],
        );
        const by = Object.fromEntries(r.rows.map((row) => [row.status, row.n]));
        const terminal = (by.success ?? 0) + (by.failure ?? 0) + (by.cancelled ?? 0);
        if (terminal === ids.length) {
          const cpuEnd = cpuJiffies();
          const t = await client!.query<{ first: Date; last: Date }>(
            `SELECT (SELECT min(started_at) FROM steps WHERE run_id = ANY($1)) AS first, (SELECT max(finished_at) FROM runs WHERE id = ANY($1)) AS last`,
            [ids],
          );
          const per = await client!.query<{ host: string; n: number }>(`SELECT host, count(*)::int AS n FROM steps WHERE run_id = ANY($1) GROUP BY host`, [ids]);
          const drainMs = t.rows[0]!.last.getTime() - t.rows[0]!.first.getTime();
          drain = {
            hosts: count,
            runs: ids.length,
            drainMs,
            runsPerSecond: (ids.length / drainMs) * 1000,
            statuses: by,
            perHost: Object.fromEntries(per.rows.map((row) => [row.host, row.n])),
            cpuBusy: (cpuEnd.busy - cpuStart.busy) / Math.max(1, cpuEnd.total - cpuStart.total),
          };
          break;
        }
        if (Date.now() - lastReport > 15_000) {
          lastReport = Date.now();
          progress(`fleet: ${count} host(s): ${terminal}/${ids.length} finished`);
        }
        if (Date.now() > deadline) throw new Error(`fleet: ${count} host(s) did not drain ${ids.length} runs in ${DRAIN_TIMEOUT_MS / 60_000} min (${JSON.stringify(by)}); host output:\n${round.map((h) => h.output()).join('\n')}`);
        await sleep(250);
      }
      progress(`fleet: ${count} host(s): ${drain.runs} runs in ${fmtMs(drain.drainMs)} = ${drain.runsPerSecond.toFixed(2)} runs/s, CPU ${(drain.cpuBusy * 100).toFixed(0)}% busy; ${JSON.stringify(drain.perHost)}`);
      drains.push(drain);
      await Promise.all(round.map(stopHost));
    }
    const crossNode = await measureCrossNode(platform, api, token, git, scratch, progress);
    return renderFleetSection({ drains, crossNode, platformStartMs, loadBefore, loadAfter: os.loadavg(), date: new Date().toISOString().slice(0, 10) });
  } finally {
    await Promise.all(hosts.map((h) => stopHost(h).catch(() => undefined)));
    await client?.end().catch(() => undefined);
    await platform?.stop().catch((err: Error) => progress(`fleet: stopping the platform failed: ${err.message}`));
    for (const dir of [path.join(dataDir, 'sandbox'), ...hosts.map((_, i) => path.join(dataDir, 'hosts', `h${i + 1}`, 'sandbox'))]) {
      await RunscDriver.releaseState(dir).catch(() => undefined);
    }
    await fs.rm(dataDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 }).catch(() => undefined);
    progress(existsSync(dataDir) ? `fleet: ${dataDir} is left behind` : 'fleet: platform stopped, data dir removed');
  }
}

interface FleetBench {
  drains: Drain[];
  crossNode: CrossNode;
  platformStartMs: number;
  loadBefore: number[];
  loadAfter: number[];
  date: string;
}

function renderFleetSection(b: FleetBench): string {
  const one = b.drains.find((d) => d.hosts === 1)!;
  const efficiency = (d: Drain) => d.runsPerSecond / (d.hosts * one.runsPerSecond);
  const four = b.drains.find((d) => d.hosts === 4);
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join('/');
  const cores = os.cpus().length;
  return [
    FLEET_HEADING,
    '',
    'Reproduce with `BENCH_ONLY=fleet npm run bench` (a platform of its own; rewrites only this section; the full `npm run bench` writes it too). ' +
      `\`BENCH_FLEET_RUNS\` (default 300) runs, \`BENCH_FLEET_SLOTS\` (default 2) job slots per host, \`BENCH_FLEET_CLONES\` (default ${CLONES === 15 ? 15 : `15; ${CLONES} here`}) clone pairs.`,
    '',
    `- date: ${b.date}; ${cores} cores; Node ${process.version}; platform start-up ${fmtMs(b.platformStartMs)}; load average (1/5/15 min) at start ${load(b.loadBefore)}, at end ${load(b.loadAfter)}`,
    '',
    `| sandbox hosts (${SLOTS} job slots each) | runs | drained in | runs/s | scaling efficiency (runs/s ÷ (hosts × runs/s of one host)) | machine CPU busy | jobs per host | statuses |`,
    '|---|---|---|---|---|---|---|---|',
    ...b.drains.map(
      (d) =>
        `| ${d.hosts} | ${d.runs} | ${fmtMs(d.drainMs)} | ${d.runsPerSecond.toFixed(2)} | ${d.hosts === 1 ? '1 (the peer)' : fmtRatio(efficiency(d))} | ${(d.cpuBusy * 100).toFixed(0)}% | ${Object.values(d.perHost).join(' / ')} | ${JSON.stringify(d.statuses)} |`,
    ),
    '',
    four
      ? `- Goal: efficiency ≥ ${GOAL_EFFICIENCY} at 4 hosts where the cores allow; measured ${fmtRatio(efficiency(four))} — ${efficiency(four) >= GOAL_EFFICIENCY ? '**met**' : `**not met on ${cores} cores**`}. ` +
        `All hosts here share the machine's ${cores} cores: a one-step run costs CPU for its workflow tasks, a gVisor sandbox start and stop, checkout and log upload, and the machine's CPU use over each drain (column above) shows how close the drain came to the cores' limit. ` +
        'Hosts on their own machines add their own cores; the queueing itself (Temporal task queues, one orchestration worker) is what this figure checks does not serialise the hosts.'
      : '',
    '',
    `| clone of a ${fmtBytes(b.crossNode.packBytes)} repository (${DEFAULT_SHAPE.commits} commits, ${DEFAULT_SHAPE.textFiles + DEFAULT_SHAPE.binaryFiles} files) | median (min–max) of ${b.crossNode.direct.n} |`,
    '|---|---|',
    `| through a git node that does not hold it (streamed to the holder) | ${fmtStats(b.crossNode.forwarded)} |`,
    `| peer: from the node that holds it | ${fmtStats(b.crossNode.direct)} |`,
    `| ratio of the medians | ${(b.crossNode.forwarded.median / b.crossNode.direct.median).toFixed(3)}× |`,
    `| ratio, median of the ${b.crossNode.pairRatios.n} pairs (goal ≤ ${GOAL_FORWARDED_RATIO}) | ${b.crossNode.pairRatios.median.toFixed(3)}× (${b.crossNode.pairRatios.min.toFixed(3)}–${b.crossNode.pairRatios.max.toFixed(3)}) — ${b.crossNode.pairRatios.median <= GOAL_FORWARDED_RATIO ? '**met**' : '**not met**'} |`,
    '',
    '- Cross-node clone: a second git-server (own data dir, node id `bench-node-2`) beside the platform\'s; `git clone` (with checkout, as users clone) straight at each git-server with a signed identity (what the gateway adds), one warm-up each (the holder\'s pack cache then serves both sides alike), then pairs of one clone of each side back to back, the order alternating; the goal is judged on the median of the pairs\' ratios, which a load change between pairs (this machine\'s other work) does not skew.',
    '- Method: N sandbox-only worker processes start and poll their queues (Temporal `DescribeTaskQueue`), then the runs are queued with `POST /api/v1/repos/bench/scaling/runs` (8 at a time, tens per second, far faster than any drain here). ' +
      'The drain time runs from the first step\'s `started_at` to the last run\'s `finished_at` (Postgres), so host start-up is not counted. The pipeline never runs on push (`on.push.branches: [none]`).',
    '',
  ].join('\n');
}

/**
 * A second git storage node (a git-server process with its own data dir and node id) beside the
 * platform's: a clone of a repository the platform's node holds, sent to the second node (which
 * streams it to the holder), against the same clone sent to the holder. Both straight at the
 * git-servers with a signed identity, as the gateway would send them, so only the hop differs.
 */
async function measureCrossNode(platform: Platform, api: Api, token: string, git: Git, scratch: string, progress: (m: string) => void): Promise<CrossNode> {
  const src = path.join(scratch, 'cross-src.git');
  const generated = await generateRepo(src, git, DEFAULT_SHAPE);
  await api.call('POST', '/api/v1/repos', token, { owner: OWNER, name: 'cross', visibility: 'private' });
  await git.run(['push', '--quiet', api.cloneUrl(OWNER, 'cross', token), 'main:main'], src);
  const internalHost = platform.serviceEnv.DOTGIT_INTERNAL_HOST ?? '127.0.0.1';
  const port = String(await freePort());
  const nodeDir = path.join(scratch, 'node-2');
  await fs.mkdir(nodeDir, { recursive: true });
  progress(`fleet: starting a second git node on port ${port}`);
  const node = await startChild({
    name: 'git-node-2',
    command: process.execPath,
    args: ['--import', 'tsx', path.join(ROOT, 'git-server', 'main.ts')],
    logFile: path.join(scratch, 'git-node-2.log'),
    pidFile: path.join(scratch, 'git-node-2.pid'),
    log: { info: () => undefined, debug: () => undefined, warn: (m: string) => progress(`git-node-2: ${m}`) },
    env: { ...platform.serviceEnv, DOTGIT_DATA_DIR: nodeDir, DOTGIT_GIT_PORT: port, DOTGIT_NODE_ID: 'bench-node-2', DOTGIT_NODE_URL: `http://${internalHost}:${port}`, LOG_LEVEL: 'warn' },
    probe: async () => {
      const res = await fetch(`http://${internalHost}:${port}/healthz`, { signal: AbortSignal.timeout(3000) });
      if (!res.ok) throw new Error(`/healthz answered ${res.status}`);
    },
    readyTimeoutMs: 90_000,
    stopGraceMs: 10_000,
  });
  try {
    const principal = await adminPrincipal(platform.databaseUrl);
    const tip = (await git.run(['--git-dir', src, 'rev-parse', 'main'])).stdout.trim();
    const clone = async (gitPort: string, dest: string) => {
      // A fresh identity each time: the gateway's lives a minute, less than all the pairs take.
      const jwt = await signIdentity(platform.serviceEnv.DOTGIT_INTERNAL_SECRET!, principal, 'bench-cross-node');
      const started = performance.now();
      await git.run(['-c', `http.extraHeader=${IDENTITY_HEADER}: ${jwt}`, 'clone', '--quiet', `http://${internalHost}:${gitPort}/${OWNER}/cross.git`, dest]);
      const ms = performance.now() - started;
      const head = (await git.run(['-C', dest, 'rev-parse', 'HEAD'])).stdout.trim();
      if (head !== tip) throw new Error(`clone via port ${gitPort} has main ${head}, expected ${tip}`);
      await fs.rm(dest, { recursive: true, force: true });
      return ms;
    };
    const holder = platform.serviceEnv.DOTGIT_GIT_PORT!;
    // Warm-up: fills the holder's pack cache, which both sides then use alike.
    await clone(holder, path.join(scratch, 'cross-warm-1'));
    await clone(port, path.join(scratch, 'cross-warm-2'));
    const direct: number[] = [];
    const forwarded: number[] = [];
    for (let i = 0; i < CLONES; i++) {
      const order = i % 2 === 0 ? ['direct', 'forwarded'] : ['forwarded', 'direct'];
      for (const side of order) {
        if (side === 'direct') direct.push(await clone(holder, path.join(scratch, `cross-d-${i}`)));
        else forwarded.push(await clone(port, path.join(scratch, `cross-f-${i}`)));
      }
    }
    progress(`fleet: cross-node clone: direct ${fmtStats(stats(direct))}, through the other node ${fmtStats(stats(forwarded))}`);
    const pairRatios = stats(forwarded.map((f, i) => f / direct[i]!));
    progress(`fleet: cross-node clone: median pair ratio ${pairRatios.median.toFixed(3)}`);
    return { packBytes: generated.packBytes, direct: stats(direct), forwarded: stats(forwarded), pairRatios };
  } finally {
    await node.stop();
  }
}

/** Replaces (or appends) this section of BENCHMARKS.md. */
export function replaceFleetSection(doc: string, section: string): string {
  return replaceSection(doc, FLEET_HEADING, section);
}
