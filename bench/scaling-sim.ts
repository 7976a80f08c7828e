import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { prng } from './gen-repo';

/**
 * The sandbox autoscaling simulation of docs/scaling.md (issue 19 item 4): replays a bursty day of
 * pipeline jobs through the chart's KEDA scaling rules and reports queue wait and pod-hours.
 * Deterministic (seeded), no platform: `BENCH_ONLY=scaling npm run bench` rewrites the results
 * section of docs/scaling.md; `node --import tsx bench/scaling-sim.ts` prints it.
 *
 * Model (each number is a parameter below, with where it comes from):
 * - Arrivals: a Poisson process whose rate follows a working day (quiet night, morning ramp, busy
 *   office hours, evening tail) plus three 5-minute bursts at 10× (merge trains, release tags),
 *   scaled so the day's mean is the chosen runs per minute. Each run is JOBS_PER_RUN jobs at once.
 * - A job holds one sandbox slot for a log-normal time (median 90 s, p90 ≈ 4 min).
 * - A sandbox pod has SLOTS job slots (DOTGIT_SANDBOX_CONCURRENCY, the chart's default 8), takes
 *   POD_START_S to be ready after it is asked for, and when it is scaled away stops taking jobs and
 *   finishes the ones it runs (the worker's drain).
 * - KEDA polls every POLL_S; the HPA scales up at once and down only to the highest wish of the last
 *   STABILIZATION_S (its default scale-down stabilization window); 0..MAX_PODS pods.
 * - Rules compared: `backlog` — KEDA's Temporal scaler alone, wish = ceil(backlog / SLOTS) (what
 *   KEDA computes for an AverageValue target of SLOTS); `backlog+busy` — the rule of ADR 0013,
 *   ceil((backlog + busy slots) / SLOTS), the Temporal trigger plus a Prometheus trigger on
 *   `dotgit_worker_slots_used` (KEDA takes the larger wish).
 */

const SLOTS = 8;
const POD_START_S = 25;
const POLL_S = 10;
const STABILIZATION_S = 300;
const MAX_PODS = 500;
const JOBS_PER_RUN = 3;
const JOB_MEDIAN_S = 90;
const JOB_SIGMA = 0.8;
const DAY_S = 24 * 3600;

export type Rule = 'backlog' | 'backlog+busy';

export interface SimResult {
  runsPerMinute: number;
  rule: Rule;
  maxPods: number;
  jobs: number;
  waitP50: number;
  waitP99: number;
  waitMax: number;
  podHours: number;
  peakPods: number;
  /** Busy slot-hours ÷ slot-hours paid for. */
  utilisation: number;
}

/** Relative arrival rate at second `t` of the day, before normalising to a mean of 1. */
function dayShape(t: number): number {
  const h = t / 3600;
  const base = h < 7 ? 0.15 : h < 9 ? 0.15 + ((h - 7) / 2) * 1.45 : h < 18 ? 1.6 : h < 21 ? 0.6 : 0.25;
  const burst = [10, 14, 16.5].some((b) => h >= b && h < b + 5 / 60) ? 10 : 1;
  return base * burst;
}

const SHAPE_MEAN = (() => {
  let sum = 0;
  for (let t = 0; t < DAY_S; t++) sum += dayShape(t);
  return sum / DAY_S;
})();

function poisson(mean: number, rand: () => number): number {
  if (mean > 30) return Math.max(0, Math.round(mean + Math.sqrt(mean) * gaussian(rand)));
  const limit = Math.exp(-mean);
  let k = 0;
  let p = rand();
  while (p > limit) {
    k++;
    p *= rand();
  }
  return k;
}

function gaussian(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

/** A binary min-heap of numbers (job end times). */
class MinHeap {
  private a: number[] = [];
  get size(): number {
    return this.a.length;
  }
  peek(): number | undefined {
    return this.a[0];
  }
  push(v: number): void {
    const a = this.a;
    a.push(v);
    for (let i = a.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (a[p] <= a[i]) break;
      [a[p], a[i]] = [a[i], a[p]];
      i = p;
    }
  }
  pop(): number | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (a.length && last !== undefined) {
      a[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l] < a[m]) m = l;
        if (r < a.length && a[r] < a[m]) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i], a[m]];
        i = m;
      }
    }
    return top;
  }
}

interface Pod {
  readyAt: number;
  /** End times of the jobs it runs. */
  jobs: MinHeap;
  draining: boolean;
  startedAt: number;
}

function quantile(sorted: Float64Array, q: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : 0;
}

/** One simulated day at `runsPerMinute` (day mean) under `rule`. */
export function simulateDay(runsPerMinute: number, rule: Rule, maxPods = MAX_PODS, seed = 42): SimResult {
  // Seeded (mulberry32), so every run of the simulation replays the same day.
  const rand = prng(seed);
  const perSecond = (runsPerMinute * JOBS_PER_RUN) / 60 / SHAPE_MEAN;
  const queue: number[] = []; // arrival times of waiting jobs (FIFO)
  let qHead = 0;
  const waits: number[] = [];
  const pods: Pod[] = [];
  const wishes: Array<{ t: number; n: number }> = [];
  let podSeconds = 0;
  let busySlotSeconds = 0;
  let peakPods = 0;
  // Run past midnight until every job of the day has ended, so the day's work is all counted.
  for (let t = 0; t < DAY_S || qHead < queue.length || pods.some((p) => p.jobs.size); t++) {
    if (t < DAY_S) {
      const n = poisson(perSecond * dayShape(t), rand);
      for (let i = 0; i < n; i++) queue.push(t);
    }
    // Jobs end; drained pods with nothing left go away.
    for (let i = pods.length - 1; i >= 0; i--) {
      const p = pods[i];
      while (p.jobs.size && (p.jobs.peek() as number) <= t) p.jobs.pop();
      if (p.draining && !p.jobs.size) pods.splice(i, 1);
    }
    // Ready pods take waiting jobs, oldest first.
    for (const p of pods) {
      if (p.draining || p.readyAt > t) continue;
      while (p.jobs.size < SLOTS && qHead < queue.length) {
        waits.push(t - queue[qHead++]);
        p.jobs.push(t + Math.max(1, Math.round(JOB_MEDIAN_S * Math.exp(JOB_SIGMA * gaussian(rand)))));
      }
    }
    if (qHead > 100_000) {
      queue.splice(0, qHead);
      qHead = 0;
    }
    // KEDA's poll and the HPA's decision.
    if (t % POLL_S === 0) {
      const backlog = queue.length - qHead;
      const busy = pods.reduce((n, p) => n + p.jobs.size, 0);
      const wish = Math.min(maxPods, Math.ceil((rule === 'backlog' ? backlog : backlog + busy) / SLOTS));
      wishes.push({ t, n: wish });
      while (wishes.length && wishes[0].t < t - STABILIZATION_S) wishes.shift();
      const active = pods.filter((p) => !p.draining);
      const target = Math.max(wish, ...wishes.map((w) => w.n));
      for (let i = active.length; i < target; i++) pods.push({ readyAt: t + POD_START_S, jobs: new MinHeap(), draining: false, startedAt: t });
      // Scale down: the HPA removes the emptiest pods; each drains (finishes its jobs, takes none).
      if (target < active.length) {
        active.sort((a, b) => a.jobs.size - b.jobs.size);
        for (const p of active.slice(0, active.length - target)) p.draining = true;
      }
    }
    podSeconds += pods.length;
    busySlotSeconds += pods.reduce((n, p) => n + p.jobs.size, 0);
    peakPods = Math.max(peakPods, pods.length);
  }
  const sorted = Float64Array.from(waits).sort();
  return {
    runsPerMinute,
    rule,
    maxPods,
    jobs: waits.length,
    waitP50: quantile(sorted, 0.5),
    waitP99: quantile(sorted, 0.99),
    waitMax: sorted.length ? sorted[sorted.length - 1] : 0,
    podHours: podSeconds / 3600,
    peakPods,
    utilisation: busySlotSeconds / Math.max(1, podSeconds * SLOTS),
  };
}

/** The results table of docs/scaling.md. */
export function scalingTable(results: SimResult[]): string {
  const lines = [
    '| runs/min (day mean) | rule | max pods | jobs | queue wait p50 | p99 | max | sandbox pod-hours | peak pods | slot utilisation |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    lines.push(`| ${r.runsPerMinute} | ${r.rule} | ${r.maxPods} | ${r.jobs.toLocaleString('en-US')} | ${r.waitP50} s | ${r.waitP99} s | ${r.waitMax} s | ${r.podHours.toFixed(0)} | ${r.peakPods} | ${(r.utilisation * 100).toFixed(0)} % |`);
  }
  return lines.join('\n');
}

export const SIM_PARAMETERS = { SLOTS, POD_START_S, POLL_S, STABILIZATION_S, MAX_PODS, JOBS_PER_RUN, JOB_MEDIAN_S, JOB_SIGMA };

export function runScalingSimulation(): SimResult[] {
  const results: SimResult[] = [];
  for (const rate of [10, 100, 1000]) for (const rule of ['backlog', 'backlog+busy'] as const) results.push(simulateDay(rate, rule));
  // What 1,000 runs a minute needs: the chart's 500-pod ceiling is not enough (see docs/scaling.md).
  results.push(simulateDay(1000, 'backlog+busy', 2500));
  return results;
}

const SCALING_DOC = path.join(__dirname, '..', 'docs', 'scaling.md');
const START = '<!-- scaling-sim:start -->';
const END = '<!-- scaling-sim:end -->';

/** Runs the simulation and replaces the table between the markers of docs/scaling.md; returns the table. */
export async function writeScalingSimulation(): Promise<string> {
  const table = scalingTable(runScalingSimulation());
  const doc = await readFile(SCALING_DOC, 'utf8');
  const from = doc.indexOf(START);
  const to = doc.indexOf(END);
  if (from < 0 || to < from) throw new Error(`${SCALING_DOC} lacks the ${START} … ${END} markers`);
  await writeFile(SCALING_DOC, `${doc.slice(0, from + START.length)}\n${table}\n${doc.slice(to)}`);
  return table;
}

if (require.main === module) {
  const started = performance.now();
  console.log(scalingTable(runScalingSimulation()));
  console.log(`\n(${((performance.now() - started) / 1000).toFixed(1)} s)`);
}
