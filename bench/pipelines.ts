/**
 * The pipeline goals of issue 5, measured on a running platform the way a user sees them:
 *
 *   push → first step `running`: BENCH_PIPELINE_PUSHES (default 50) pushes of an empty commit, one
 *     at a time; the `step` `running` event is read from the run's SSE feed through the gateway
 *   a line printed in the sandbox → received by an SSE client: steps that print their own
 *     `date +%s%N` every 100 ms, read through the gateway
 *   sandbox start: the configured driver (createSandboxDriver, as the worker builds it) running `true`
 *   BENCH_DRAIN_RUNS (default 500) runs queued at once with `POST …/runs`: drained throughput and
 *     runs lost (anything that does not end `success`)
 *
 * Every timestamp compared is the same machine's wall clock: Date.now() here, Redis stream ids
 * (`<ms>-<seq>`, Redis's clock when it appended the entry), `date` inside gVisor (the host's time).
 */
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { createSandboxDriver, type SandboxKind } from '../activities/sandbox/create-driver';
import { RunscDriver } from '../activities/sandbox/runsc-driver';
import type { SandboxDriver } from '../activities/sandbox/sandbox-driver';
import type { Platform } from '../infra/platform';
import { dataPaths, loadConfig } from '../core/config';
import { connectTemporal } from '../core/temporal';
import { Api, fmtMs, Git, runIdsFrom, sleep, type RunView } from './lib';
import { childrenOf, cpuMs, cpuTicks } from './proc';
import { runPhases } from './run-phases';
import { openSse, streamIdMs } from './sse';

/** Goals of issue 5. */
export const GOAL_PICKUP_P50_MS = 300;
export const GOAL_PICKUP_P99_MS = 1000;
export const GOAL_LINE_P99_MS = 100;
export const GOAL_SANDBOX_P50_MS = 400;

function intEnv(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name] ?? String(fallback);
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} must be an integer ${min}..${max}, got ${raw}`);
  return n;
}

export const PICKUP_PUSHES = intEnv('BENCH_PIPELINE_PUSHES', 50, 1, 1000);
export const DRAIN_RUNS = intEnv('BENCH_DRAIN_RUNS', 500, 1, 5000);
/** Runs of the ticking step; each prints TICKS lines, one every TICK_MS. */
export const LINE_RUNS = 4;
export const TICKS = 50;
export const TICK_MS = 100;
/** The ticking step waits this long before its first line, so the SSE client is following by then. */
export const TICK_DELAY_S = 2;
export const SANDBOX_STARTS = 40;
/** POSTs in flight at once while queueing the drained runs. */
export const DRAIN_POST_CONCURRENCY = 8;
const DRAIN_TIMEOUT_MS = 30 * 60_000;
/** Drained runs whose Temporal history is read for the breakdown. */
const DRAIN_PHASE_SAMPLES = 25;
/** Segments of a drained run's life, in order. */
export const DRAIN_SEGMENTS = [
  'created → workflow started (outbox relay polling)',
  'workflow started → runStep scheduled (loadPipeline, startRun)',
  'runStep scheduled → started (waiting for a sandbox slot)',
  'runStep started → completed (checkout, sandbox, log upload)',
  'runStep completed → run finished (cleanup, records)',
] as const;

export interface PipelinesBench {
  pickup: {
    /** Push returned → the `running` step event appended in Redis (its stream id). */
    toEvent: number[];
    /** Push returned → that event read by the SSE client through the gateway. */
    toSeen: number[];
    /** Run recorded by the post-receive hook (`createdAt`) → the event: the server-side part. */
    recordedToEvent: number[];
    /** How long each `git push` took. */
    pushMs: number[];
    /** Per push, the wall-clock times (ms) of the points in PICKUP_POINTS, for the breakdown. */
    points: number[][];
  };
  lines: {
    /** Printed (`date +%s%N` in the sandbox) → read by the SSE client. */
    total: number[];
    /** Printed → appended to the Redis stream (worker: sandbox output pipe, line splitting, XADD). */
    toRedis: number[];
    /** Appended → read by the client (api XREAD BLOCK, SSE, gateway). */
    redisToClient: number[];
    /** Lines printed before the SSE client was following (replayed from the stream; not counted). */
    excluded: number;
    expected: number;
  };
  sandbox: { driver: string; samples: number[] };
  drain: {
    runs: number;
    /** First POST sent → last 202 received. */
    submitMs: number;
    /** First POST sent → last run finished (its `finished_at`). */
    drainMs: number;
    /** Of the runs: how each ended, as the API reports it after the drain. */
    statuses: Record<string, number>;
    /** Runs that did not end `success` (or were never seen). */
    lost: number;
    /** Run created → finished, per run (queueing included). */
    latency: number[];
    /** CPU milliseconds per drained run, by process (own + reaped children), over the drain. */
    cpuPerRun: Record<string, number>;
    /** Wall time of the drain × cores: the CPU the machine had meanwhile, per run. */
    machinePerRun: number;
    /** The worker's sandbox slots (DOTGIT_SANDBOX_CONCURRENCY as the platform runs it). */
    slots: number;
    /** For a sample of the runs (DRAIN_PHASE_SAMPLES, spread over the queue): per DRAIN_SEGMENTS, the durations. */
    segments: number[][];
  };
}

export interface PipelinesContext {
  platform: Platform;
  api: Api;
  token: string;
  owner: string;
  git: Git;
  /** A scratch directory the bench owns. */
  scratch: string;
  /** Aborted when the bench is interrupted. */
  signal: AbortSignal;
  progress: (msg: string) => void;
}

/** The points of a run's way to its first step, in order (from the run row, its Temporal history and its events). */
export const PICKUP_POINTS = [
  'run recorded by the post-receive hook',
  'workflow started (outbox relay → Temporal)',
  'first workflow task started (worker)',
  'loadPipeline scheduled',
  'loadPipeline started',
  'loadPipeline completed (reads the pipeline file)',
  'startRun scheduled',
  'startRun started',
  'startRun completed (run and step rows)',
  'runStep scheduled',
  'runStep started (sandbox queue)',
  'step `running` event (checkout, step row)',
] as const;

/** Nearest-rank percentile (p in 0..100): with 50 samples p99 is the largest. */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return NaN;
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length))) - 1]!;
}

export async function measurePipelines(ctx: PipelinesContext): Promise<PipelinesBench> {
  const sandbox = await measureSandbox(ctx);
  const pickup = await measurePickup(ctx);
  const lines = await measureLines(ctx);
  const drain = await measureDrain(ctx);
  return { pickup, lines, sandbox, drain };
}

/** A repository with `.dotgit/pipeline.yml` and a local working copy of it, pushed once (warm-up). */
async function pipelineRepo(ctx: PipelinesContext, name: string, pipelineYml: string): Promise<{ work: string; url: string }> {
  const { api, git, token, owner } = ctx;
  await api.call('POST', '/api/v1/repos', token, { owner, name, visibility: 'private' });
  const work = path.join(ctx.scratch, name);
  await git.run(['init', '--quiet', '--initial-branch=main', work]);
  await fs.mkdir(path.join(work, '.dotgit'), { recursive: true });
  await fs.writeFile(path.join(work, '.dotgit', 'pipeline.yml'), pipelineYml);
  await git.run(['add', '-A'], work);
  await git.run(['commit', '--quiet', '-m', 'pipeline'], work);
  return { work, url: api.cloneUrl(owner, name, token) };
}

/** Pushes a new empty commit; the one run it announces. */
async function pushCommit(ctx: PipelinesContext, work: string, url: string, message: string): Promise<{ ms: number; returnedAt: number; runId: string }> {
  await ctx.git.run(['commit', '--quiet', '--allow-empty', '-m', message], work);
  const r = await ctx.git.run(['push', '--quiet', url, 'main'], work);
  const returnedAt = Date.now();
  const ids = runIdsFrom(r.stderr + r.stdout);
  if (ids.length !== 1) throw new Error(`push announced ${ids.length} runs: ${r.stderr}`);
  return { ms: r.ms, returnedAt, runId: ids[0]! };
}

function eventsUrl(ctx: PipelinesContext, runId: string): string {
  return `${ctx.api.gatewayUrl}/api/v1/runs/${encodeURIComponent(runId)}/events`;
}

/** Reads a run's events through the gateway until its terminal status, handing each to `onEvent`; the run must succeed. */
async function followRun(
  ctx: PipelinesContext,
  runId: string,
  onEvent: (e: { id?: string; event: string; data: Record<string, unknown>; receivedAt: number }, connectedAt: number) => void,
  timeoutMs = 120_000,
): Promise<void> {
  const ctrl = new AbortController();
  const stop = () => ctrl.abort();
  ctx.signal.addEventListener('abort', stop, { once: true });
  const timer = setTimeout(stop, timeoutMs);
  try {
    const conn = await openSse(eventsUrl(ctx, runId), ctx.token, ctrl.signal);
    for await (const e of conn.events) {
      const data = e.data as Record<string, unknown>;
      onEvent({ ...e, data }, conn.connectedAt);
      if (e.event === 'status' && ['success', 'failure', 'cancelled'].includes(String(data.status))) {
        if (data.status !== 'success') throw new Error(`run ${runId} ended ${String(data.status)}: ${String(data.message ?? '')}`);
        return;
      }
    }
    throw new Error(ctrl.signal.aborted ? `run ${runId} not finished within ${timeoutMs} ms` : `the event stream of ${runId} ended without a terminal status`);
  } finally {
    clearTimeout(timer);
    ctx.signal.removeEventListener('abort', stop);
    ctrl.abort();
  }
}

/** push → first step running, one push at a time (each run finishes before the next push). */
async function measurePickup(ctx: PipelinesContext): Promise<PipelinesBench['pickup']> {
  const { work, url } = await pipelineRepo(ctx, 'pipelines-pickup', 'jobs:\n  bench:\n    steps:\n      - name: noop\n        run: "true"\n');
  const out: PipelinesBench['pickup'] = { toEvent: [], toSeen: [], recordedToEvent: [], pushMs: [], points: [] };
  const temporal = await connectTemporal(ctx.platform.temporalAddress, ctx.platform.namespace);
  // Warm-up: the worker self-tests its sandbox on its first step.
  const warm = await pushCommit(ctx, work, url, 'warm-up');
  await followRun(ctx, warm.runId, () => undefined);
  for (let i = 0; i < PICKUP_PUSHES; i++) {
    const pushed = await pushCommit(ctx, work, url, `pickup ${i}`);
    let running: { eventMs: number; seenAt: number } | undefined;
    await followRun(ctx, pushed.runId, (e) => {
      if (!running && e.event === 'step' && e.data.status === 'running') running = { eventMs: streamIdMs(e.id), seenAt: e.receivedAt };
    });
    if (!running) throw new Error(`run ${pushed.runId} succeeded without a running step event`);
    const run = await ctx.api.call<RunView>('GET', `/api/v1/runs/${encodeURIComponent(pushed.runId)}`, ctx.token);
    out.toEvent.push(running.eventMs - pushed.returnedAt);
    out.toSeen.push(running.seenAt - pushed.returnedAt);
    out.recordedToEvent.push(running.eventMs - Date.parse(run.createdAt));
    out.pushMs.push(pushed.ms);
    const ph = await runPhases(temporal, pushed.runId);
    const act = (name: string, k: 'scheduled' | 'started' | 'completed') => ph.activities[name]?.[k] ?? NaN;
    out.points.push([
      Date.parse(run.createdAt),
      ph.workflowStarted,
      ph.firstWorkflowTask,
      act('loadPipeline', 'scheduled'),
      act('loadPipeline', 'started'),
      act('loadPipeline', 'completed'),
      act('startRun', 'scheduled'),
      act('startRun', 'started'),
      act('startRun', 'completed'),
      act('runStep', 'scheduled'),
      act('runStep', 'started'),
      running.eventMs,
    ]);
    ctx.progress(`pipelines: push ${i + 1}/${PICKUP_PUSHES}: push ${fmtMs(pushed.ms)}, returned → step running ${fmtMs(out.toEvent.at(-1)!)} (seen by SSE ${fmtMs(out.toSeen.at(-1)!)})`);
  }
  await temporal.connection.close();
  return out;
}

/** Lines printed in the sandbox → read by an SSE client through the gateway. */
async function measureLines(ctx: PipelinesContext): Promise<PipelinesBench['lines']> {
  // POSIX sh only: the step runs with `/bin/sh -e -c`. `date +%s%N` is GNU date's nanosecond clock.
  const script = `sleep ${TICK_DELAY_S}; i=0; while [ $i -lt ${TICKS} ]; do echo "tick $i $(date +%s%N)"; i=$((i + 1)); sleep ${TICK_MS / 1000}; done`;
  const yml = `jobs:\n  bench:\n    steps:\n      - name: ticks\n        run: ${JSON.stringify(script)}\n`;
  const { work, url } = await pipelineRepo(ctx, 'pipelines-lines', yml);
  const out: PipelinesBench['lines'] = { total: [], toRedis: [], redisToClient: [], excluded: 0, expected: LINE_RUNS * TICKS };
  for (let r = 0; r < LINE_RUNS; r++) {
    const pushed = await pushCommit(ctx, work, url, `lines ${r}`);
    let seen = 0;
    await followRun(ctx, pushed.runId, (e, connectedAt) => {
      if (e.event !== 'log') return;
      const m = /^tick (\d+) (\d{19})$/.exec(String(e.data.line));
      if (!m) return;
      seen++;
      const printedMs = Number(BigInt(m[2]!) / 1000n) / 1000; // ns → ms, keeping µs
      // A line printed before the client was following is a replay from the stream, not a live one.
      if (printedMs < connectedAt) {
        out.excluded++;
        return;
      }
      const inRedis = streamIdMs(e.id);
      out.total.push(e.receivedAt - printedMs);
      out.toRedis.push(inRedis - printedMs);
      out.redisToClient.push(e.receivedAt - inRedis);
    });
    if (seen !== TICKS) throw new Error(`run ${pushed.runId}: the SSE client got ${seen} of ${TICKS} lines`);
    ctx.progress(`pipelines: lines run ${r + 1}/${LINE_RUNS}: ${seen} lines, p99 so far ${fmtMs(percentile(out.total, 99))}`);
  }
  return out;
}

/** The sandbox the worker would use (DOTGIT_SANDBOX of the platform, default auto) running `true`. */
async function measureSandbox(ctx: PipelinesContext): Promise<PipelinesBench['sandbox']> {
  const stateDir = path.join(ctx.scratch, 'pipelines-sandbox');
  const workspace = path.join(ctx.scratch, 'pipelines-ws');
  await fs.mkdir(workspace, { recursive: true });
  const kind = (ctx.platform.serviceEnv.DOTGIT_SANDBOX ?? 'auto') as SandboxKind;
  const driver: SandboxDriver = createSandboxDriver(kind, { stateDir });
  const samples: number[] = [];
  try {
    const once = async () => {
      if (ctx.signal.aborted) throw new Error('the benchmark is shutting down');
      const lines: string[] = [];
      const started = performance.now();
      const r = await driver.run({ workspace, command: 'true', env: {}, timeoutMs: 30_000, onLine: (s, l) => lines.push(`${s}: ${l}`), signal: ctx.signal });
      const ms = performance.now() - started;
      if (r.exitCode !== 0) throw new Error(`${driver.name} true exited ${r.exitCode}: ${lines.join(' | ')}`);
      return ms;
    };
    await once(); // warm-up: the self-test and the first start (state directory, page cache)
    for (let i = 0; i < SANDBOX_STARTS; i++) samples.push(await once());
    ctx.progress(`pipelines: sandbox (${driver.name}) true: p50 ${fmtMs(percentile(samples, 50))}, p99 ${fmtMs(percentile(samples, 99))}`);
    return { driver: driver.name, samples };
  } finally {
    await RunscDriver.releaseState(stateDir).catch(() => undefined);
  }
}

/** DRAIN_RUNS runs queued with `POST …/runs` as fast as the API takes them, then drained. */
async function measureDrain(ctx: PipelinesContext): Promise<PipelinesBench['drain']> {
  const { api, token, owner } = ctx;
  const name = 'pipelines-drain';
  const { work, url } = await pipelineRepo(ctx, name, 'jobs:\n  bench:\n    steps:\n      - name: noop\n        run: "true"\n');
  const first = await pushCommit(ctx, work, url, 'drain');
  await followRun(ctx, first.runId, () => undefined);

  ctx.progress(`pipelines: queueing ${DRAIN_RUNS} runs with POST /api/v1/repos/${owner}/${name}/runs`);
  const ids: string[] = [];
  const startedAt = Date.now();
  let next = 0;
  const poster = async () => {
    while (next < DRAIN_RUNS && !ctx.signal.aborted) {
      next++;
      const r = await api.call<{ id: string }>('POST', `/api/v1/repos/${owner}/${name}/runs`, token, { ref: 'main' }, [202]);
      ids.push(r.id);
    }
  };
  const cpuBefore = platformCpu(ctx.platform);
  await Promise.all(Array.from({ length: DRAIN_POST_CONCURRENCY }, poster));
  const submitMs = Date.now() - startedAt;
  ctx.progress(`pipelines: ${ids.length} runs queued in ${fmtMs(submitMs)}; waiting for them`);

  // Progress from Postgres (one query instead of 500 GETs a round); the verdict below from the API.
  const db = new pg.Client({ connectionString: ctx.platform.databaseUrl });
  await db.connect();
  let drainMs = NaN;
  let cpuAfter: Record<string, number> | undefined;
  try {
    const deadline = Date.now() + DRAIN_TIMEOUT_MS;
    let lastReport = 0;
    for (;;) {
      const r = await db.query<{ status: string; n: number; last: Date | null }>(
        `SELECT status, count(*)::int AS n, max(finished_at) AS last FROM runs WHERE id = ANY($1) GROUP BY status`,
        [ids],
      );
      const by = Object.fromEntries(r.rows.map((row) => [row.status, row.n]));
      const terminal = (by.success ?? 0) + (by.failure ?? 0) + (by.cancelled ?? 0);
      if (terminal === ids.length) {
        const last = Math.max(...r.rows.map((row) => row.last?.getTime() ?? 0));
        drainMs = last - startedAt;
        cpuAfter = platformCpu(ctx.platform);
        break;
      }
      if (Date.now() - lastReport > 10_000) {
        lastReport = Date.now();
        ctx.progress(`pipelines: drain ${terminal}/${ids.length} finished (${JSON.stringify(by)})`);
      }
      if (Date.now() > deadline || ctx.signal.aborted) {
        ctx.progress(`pipelines: drain stopped waiting with ${terminal}/${ids.length} finished`);
        break;
      }
      await sleep(250);
    }
  } finally {
    await db.end();
  }

  // Every run as the API reports it.
  const statuses: Record<string, number> = {};
  const latency: number[] = [];
  let k = 0;
  const reader = async () => {
    while (k < ids.length) {
      const id = ids[k++]!;
      let status = 'missing';
      try {
        const run = await api.call<RunView>('GET', `/api/v1/runs/${encodeURIComponent(id)}`, token);
        status = run.status;
        if (run.finishedAt) latency.push(Date.parse(run.finishedAt) - Date.parse(run.createdAt));
      } catch {
        // counted as missing
      }
      statuses[status] = (statuses[status] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: DRAIN_POST_CONCURRENCY }, reader));
  const lost = DRAIN_RUNS - (statuses.success ?? 0);
  const segments: number[][] = [];
  const temporal = await connectTemporal(ctx.platform.temporalAddress, ctx.platform.namespace);
  try {
    for (let i = 0; i < Math.min(DRAIN_PHASE_SAMPLES, ids.length); i++) {
      const id = ids[Math.floor((i * ids.length) / Math.min(DRAIN_PHASE_SAMPLES, ids.length))]!;
      const run = await api.call<RunView>('GET', `/api/v1/runs/${encodeURIComponent(id)}`, token);
      const ph = await runPhases(temporal, id);
      const step = ph.activities.runStep;
      if (!step || !run.finishedAt) continue;
      segments.push([
        ph.workflowStarted - Date.parse(run.createdAt),
        step.scheduled - ph.workflowStarted,
        (step.started ?? NaN) - step.scheduled,
        (step.completed ?? NaN) - (step.started ?? NaN),
        Date.parse(run.finishedAt) - (step.completed ?? NaN),
      ]);
    }
  } finally {
    await temporal.connection.close();
  }
  ctx.progress(`pipelines: drained ${DRAIN_RUNS} runs in ${fmtMs(drainMs)} (${((DRAIN_RUNS / drainMs) * 1000).toFixed(2)} runs/s); ${JSON.stringify(statuses)}; lost ${lost}`);
  const cpuPerRun = Object.fromEntries(Object.entries(cpuAfter ?? {}).map(([k, v]) => [k, (v - (cpuBefore[k] ?? NaN)) / DRAIN_RUNS]));
  const machinePerRun = (drainMs * os.cpus().length) / DRAIN_RUNS;
  return { runs: DRAIN_RUNS, submitMs, drainMs, statuses, lost, latency, cpuPerRun, machinePerRun, slots: loadConfig(ctx.platform.serviceEnv).sandboxConcurrency, segments };
}

/**
 * CPU (ms, own + reaped children) of the platform's processes: the four services (the worker's
 * children are the sandboxes and git), Temporal's dev server, Redis, and Postgres (the postmaster
 * with its reaped backends, plus the live ones).
 */
function platformCpu(platform: Platform): Record<string, number> {
  const out: Record<string, number> = {};
  const read = (name: string, pid: number | undefined, withLiveChildren = false) => {
    if (!pid) return;
    try {
      out[name] = cpuMs(cpuTicks(pid)) + (withLiveChildren ? childrenOf(pid).reduce((n, c) => n + ownCpu(c), 0) : 0);
    } catch {
      // gone: not reported
    }
  };
  for (const name of ['worker', 'api', 'git-server', 'gateway']) read(name, platform.services.get(name)?.pid);
  const paths = dataPaths({ dataDir: platform.dataDir });
  const jsonPid = (file: string) => {
    try {
      return (JSON.parse(readFileSync(file, 'utf8')) as { pid: number }).pid;
    } catch {
      return undefined;
    }
  };
  read('temporal', jsonPid(path.join(paths.temporal, 'temporal.pid')));
  read('redis', jsonPid(path.join(paths.redis, 'redis-server.pid')));
  try {
    read('postgres', Number(readFileSync(path.join(paths.postgres, 'postmaster.pid'), 'utf8').split('\n')[0]), true);
  } catch {
    // no Postgres pid file
  }
  return out;
}

function ownCpu(pid: number): number {
  try {
    const t = cpuTicks(pid);
    return cpuMs({ ...t, cutime: 0, cstime: 0 });
  } catch {
    return 0;
  }
}
