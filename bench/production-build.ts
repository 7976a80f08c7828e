/**
 * Issue 16's figures for the production build (ADR 0029), each against its peer in the same run:
 *
 *   node --import tsx bench/production-build.ts      (BENCH_BUILD_PUSHES, default 5)
 *
 * Starts a platform of its own twice, the services from source through tsx (the worker bundling
 * workflows at start, as before the build) and compiled from dist/, one after the other, and on
 * each: worker start → polling (the worker process's start time from /proc to its `worker running`
 * line), while the whole platform starts and, after the workload, restarted alone three times;
 * resident memory of the four Node services at idle (VmRSS summed, 10 s after ready); the
 * same after a workload (a warm-up run, BENCH_BUILD_PUSHES small pushes that each trigger a
 * one-step run, 10 clones through the gateway), with the summed peak (VmHWM). On each, the small
 * push (1 commit, triggering a run) against `git push` of the same commit to a local bare repository
 * with receive.fsckObjects. Also times the build itself: a full build (--force), a services-only
 * rebuild, and the check when nothing changed. Rewrites only its section of BENCHMARKS.md.
 */
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { RunscDriver } from '../activities/sandbox/runsc-driver';
import { LIMITS_OUT_OF_THE_WAY, ownPlatformEnv } from '../infra/own-platform-env';
import { ROOT, startPlatform } from '../infra/platform';
import { Api, benchTenant, fmtBytes, fmtMs, fmtRatio, fmtStats, Git, intEnv, replaceSection, runIdsFrom, runProcess, type RunView, sleep, stats, type Stats } from './lib';
import { CLOCK_TICKS, hwmBytes, rssBytes } from './proc';

export const BUILD_HEADING = '## Production build (issue 16)';
const PUSHES = intEnv('BENCH_BUILD_PUSHES', 5, 1, 50);
const SERVICES = ['gateway', 'api', 'git-server', 'worker'] as const;
const OWNER = 'bench';
const MiB = 1 << 20;
const progress = (m: string) => console.log(`bench: ${m}`);

type Mode = 'source' | 'compiled';

/** How many times the worker is restarted alone (the platform up and idle) to time its start. */
const WORKER_RESTARTS = 3;

interface ModeResult {
  /** The worker's start while the whole platform starts (all services at once on the same cores). */
  workerStartMs: number;
  /** The worker restarted alone, WORKER_RESTARTS times. */
  workerRestartMs: number[];
  idle: Record<string, number>;
  after: Record<string, number>;
  peak: Record<string, number>;
  push: number[];
  peerPush: number[];
}

/** When the process started, in epoch milliseconds (/proc/<pid>/stat field 22, ticks after boot). */
function startedAtMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[22 - 3]);
  const btime = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))![1]);
  return btime * 1000 + (ticks * 1000) / CLOCK_TICKS;
}

const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);

async function measureMode(mode: Mode, scratch: string): Promise<ModeResult> {
  const dataDir = path.join(scratch, `data-${mode}`);
  progress(`${mode}: starting a platform`);
  const platform = await startPlatform({
    env: ownPlatformEnv(dataDir, { DOTGIT_RATE_LIMITS: LIMITS_OUT_OF_THE_WAY, LOG_LEVEL: 'info' }),
    log: { info: () => undefined, debug: () => undefined, warn: (m) => progress(`warning: ${m}`) },
    ephemeral: true,
    fromSource: mode === 'source',
  });
  try {
    const pids = Object.fromEntries(SERVICES.map((s) => [s, platform.services.get(s)!.pid!]));
    const workerLog = path.join(dataDir, 'logs', 'worker.log');
    const workerStarted = startedAtMs(pids.worker!);
    const workerStartMs = (await workerRunningSince(workerLog, workerStarted)) - workerStarted;
    progress(`${mode}: worker start → polling ${fmtMs(workerStartMs)}`);
    await sleep(10_000);
    const idle = Object.fromEntries(SERVICES.map((s) => [s, rssBytes(pids[s]!)]));
    progress(`${mode}: idle ${fmtBytes(sum(idle))}`);

    const api = new Api(platform.gatewayUrl);
    const token = await benchTenant(api, platform.adminToken, OWNER);
    await api.call('POST', '/api/v1/repos', token, { owner: OWNER, name: 'pipe', visibility: 'private' });
    const home = path.join(scratch, `home-${mode}`);
    await fs.mkdir(home, { recursive: true });
    const git = new Git(home);
    const work = path.join(scratch, `pipe-${mode}`);
    const peer = path.join(scratch, `pipe-peer-${mode}.git`);
    await git.run(['init', '--quiet', '--initial-branch=main', work]);
    await fs.mkdir(path.join(work, '.dotgit'), { recursive: true });
    await fs.writeFile(path.join(work, '.dotgit', 'pipeline.yml'), 'jobs:\n  bench:\n    steps:\n      - name: noop\n        run: "true"\n');
    await fs.writeFile(path.join(work, 'README.md'), '# production build benchmark\n');
    await git.run(['add', '-A'], work);
    await git.run(['commit', '--quiet', '-m', 'pipeline'], work);
    await git.run(['init', '--bare', '--quiet', '--initial-branch=main', peer]);
    await git.run(['--git-dir', peer, 'config', 'receive.fsckObjects', 'true']);
    const url = api.cloneUrl(OWNER, 'pipe', token);
    const pushOurs = async () => {
      const r = await git.run(['push', url, 'main'], work);
      const ids = runIdsFrom(r.stderr + r.stdout);
      if (ids.length !== 1) throw new Error(`push announced ${ids.length} runs: ${r.stderr}`);
      return { ms: r.ms, runId: ids[0]! };
    };
    await git.run(['push', peer, 'main'], work);
    await waitForRun(api, token, (await pushOurs()).runId); // warm-up: the first step self-tests the sandbox
    const push: number[] = [];
    const peerPush: number[] = [];
    for (let i = 0; i < PUSHES; i++) {
      await git.run(['commit', '--quiet', '--allow-empty', '-m', `bench ${i}`], work);
      peerPush.push((await git.run(['push', peer, 'main'], work)).ms);
      const ours = await pushOurs();
      push.push(ours.ms);
      await waitForRun(api, token, ours.runId);
      progress(`${mode}: push ${i + 1}/${PUSHES} ${fmtMs(ours.ms)} (local ${fmtMs(peerPush.at(-1)!)})`);
    }
    for (let i = 0; i < 10; i++) {
      const dir = path.join(scratch, `clone-${mode}-${i}`);
      await git.run(['clone', '--quiet', url, dir]);
      await fs.rm(dir, { recursive: true, force: true });
    }
    const after = Object.fromEntries(SERVICES.map((s) => [s, rssBytes(pids[s]!)]));
    const peak = Object.fromEntries(SERVICES.map((s) => [s, hwmBytes(pids[s]!)]));
    progress(`${mode}: after ${fmtBytes(sum(after))}, peak ${fmtBytes(sum(peak))}`);
    // After the memory figures (a restarted worker's would be those of a fresh process).
    const workerRestartMs: number[] = [];
    const worker = platform.services.get('worker')!;
    for (let i = 0; i < WORKER_RESTARTS; i++) {
      await sleep(3000);
      await worker.restartNow();
      const started = startedAtMs(worker.pid!);
      workerRestartMs.push((await workerRunningSince(workerLog, started)) - started);
      progress(`${mode}: worker restarted alone, start → polling ${fmtMs(workerRestartMs.at(-1)!)}`);
    }
    return { workerStartMs, workerRestartMs, idle, after, peak, push, peerPush };
  } finally {
    await platform.stop();
    await RunscDriver.releaseState(path.join(dataDir, 'sandbox'));
  }
}

/**
 * When the worker logged `worker running` (it polls its queues from then on) at or after `sinceMs`:
 * the first such line of the process started then.
 */
async function workerRunningSince(workerLog: string, sinceMs: number): Promise<number> {
  for (let i = 0; i < 600; i++) {
    for (const line of (await fs.readFile(workerLog, 'utf8')).split('\n')) {
      if (!line.includes('"msg":"worker running"')) continue;
      const { time } = JSON.parse(line) as { time: number };
      if (time >= sinceMs) return time;
    }
    await sleep(100);
  }
  throw new Error(`no "worker running" line in ${workerLog} since ${new Date(sinceMs).toISOString()}`);
}

async function waitForRun(api: Api, token: string, id: string): Promise<void> {
  const deadline = performance.now() + 120_000;
  for (;;) {
    const run = await api.call<RunView>('GET', `/api/v1/runs/${encodeURIComponent(id)}`, token);
    if (run.status === 'success') return;
    if (run.status === 'failure' || run.status === 'cancelled') throw new Error(`run ${id} ended ${run.status}: ${run.message ?? ''}`);
    if (performance.now() > deadline) throw new Error(`run ${id} still ${run.status} after 120 s`);
    await sleep(50);
  }
}

/** The build's own cost: everything from scratch, the services after a one-line change, the check alone. */
async function measureBuild(): Promise<{ full: number; services: number; check: number }> {
  const build = async (...args: string[]) => {
    const r = await runProcess(process.execPath, [path.join(ROOT, 'infra', 'build.cjs'), ...args], { cwd: ROOT });
    if (r.code !== 0) throw new Error(`build failed: ${r.stderr}`);
    return r.ms;
  };
  const full = await build('--force');
  // A touched service file: only esbuild runs (the stamp hashes content, so write a real change and undo it).
  const file = path.join(ROOT, 'gateway', 'main.ts');
  const original = await fs.readFile(file, 'utf8');
  await fs.writeFile(file, `${original}\n// bench: a change the build must see\n`);
  let services: number;
  try {
    services = await build();
  } finally {
    await fs.writeFile(file, original);
  }
  await build();
  const check = await build();
  return { full, services, check };
}

async function main(): Promise<void> {
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'dotgit-bench-build-'));
  await fs.chmod(scratch, 0o755); // Postgres runs as user postgres when we are root
  try {
    progress('build: full, services only, check');
    const b = await measureBuild();
    progress(`build: full ${fmtMs(b.full)}, services ${fmtMs(b.services)}, check ${fmtMs(b.check)}`);
    const source = await measureMode('source', scratch);
    const compiled = await measureMode('compiled', scratch);
    const doc = await fs.readFile(path.join(ROOT, 'BENCHMARKS.md'), 'utf8');
    await fs.writeFile(path.join(ROOT, 'BENCHMARKS.md'), replaceSection(doc, BUILD_HEADING, render(b, source, compiled)));
    progress('BENCHMARKS.md updated');
  } finally {
    await fs.rm(scratch, { recursive: true, force: true });
  }
}

function render(b: { full: number; services: number; check: number }, source: ModeResult, compiled: ModeResult): string {
  const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;
  const met = (ok: boolean) => (ok ? '**met**' : '**not met**');
  const push: Stats = stats(compiled.push);
  const peer: Stats = stats(compiled.peerPush);
  const pushRatio = push.median / peer.median;
  const restart: Stats = stats(compiled.workerRestartMs);
  const loads = os.loadavg().map((l) => l.toFixed(2)).join('/');
  const lines = [
    BUILD_HEADING,
    '',
    `Reproduce with \`node --import tsx bench/production-build.ts\` (\`BENCH_BUILD_PUSHES\`, default 5; two platforms of its own, one after the other: services from source through tsx, then compiled; rewrites only this section). ADR 0029.`,
    '',
    `- date: ${new Date().toISOString()}; ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM; Node ${process.version}; load average at the end ${loads} (other engineers' test runs share the cores)`,
    '',
    '| figure | compiled (dist/) | from source (tsx) | compiled ÷ source | goal | result |',
    '|---|---|---|---|---|---|',
    `| resident memory of the four Node services at idle (VmRSS summed, 10 s after ready) | ${mib(sum(compiled.idle))} | ${mib(sum(source.idle))} | ${(sum(compiled.idle) / sum(source.idle)).toFixed(2)} | ≤ 400 MiB | ${met(sum(compiled.idle) <= 400 * MiB)} |`,
    `| … after the workload (${PUSHES + 1} pushes with runs, 10 clones), VmRSS summed | ${mib(sum(compiled.after))} | ${mib(sum(source.after))} | ${(sum(compiled.after) / sum(source.after)).toFixed(2)} | ≤ 600 MiB | ${met(sum(compiled.after) <= 600 * MiB)} |`,
    `| … peak (VmHWM summed; the previous figure, 835 MiB, was this with tsx) | ${mib(sum(compiled.peak))} | ${mib(sum(source.peak))} | ${(sum(compiled.peak) / sum(source.peak)).toFixed(2)} | ≤ 600 MiB | ${met(sum(compiled.peak) <= 600 * MiB)} |`,
    ...SERVICES.map((s) => `| … ${s}: idle / after / peak | ${mib(compiled.idle[s]!)} / ${mib(compiled.after[s]!)} / ${mib(compiled.peak[s]!)} | ${mib(source.idle[s]!)} / ${mib(source.after[s]!)} / ${mib(source.peak[s]!)} | ${(compiled.peak[s]! / source.peak[s]!).toFixed(2)} (peak) | — | — |`),
    `| worker start → polling (process start to \`worker running\`), the worker restarted alone, median of ${WORKER_RESTARTS} | ${fmtStats(restart)} | ${fmtStats(stats(source.workerRestartMs))} | ${(restart.median / stats(source.workerRestartMs).median).toFixed(2)} | ≤ 2 s | ${met(restart.median <= 2000)} |`,
    `| … the same while the whole platform starts (every service at once on the same cores; one sample) | ${fmtMs(compiled.workerStartMs)} | ${fmtMs(source.workerStartMs)} | ${(compiled.workerStartMs / source.workerStartMs).toFixed(2)} | — | — |`,
    `| small push (1 commit) that triggers a run, median of ${PUSHES} | ${fmtStats(push)} | ${fmtStats(stats(source.push))} | ${(push.median / stats(source.push).median).toFixed(2)} | — | — |`,
    `| … ÷ \`git push\` of the same commit to a local bare repo (receive.fsckObjects), compiled platform | ${fmtRatio(pushRatio)} (${fmtMs(push.median)} vs ${fmtStats(peer)}) | ${fmtRatio(stats(source.push).median / stats(source.peerPush).median)} | — | ≤ 3× | ${met(pushRatio <= 3)} |`,
    `| the build: everything (\`--force\`: esbuild + two workflow bundles) | ${fmtMs(b.full)} | — | — | — | — |`,
    `| … after a change to one service file (esbuild only) | ${fmtMs(b.services)} | — | — | — | — |`,
    `| … nothing changed (hash check of the inputs, node start included) | ${fmtMs(b.check)} | — | — | — | — |`,
    '',
  ];
  return lines.join('\n');
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
