/**
 * Issue 11's figure "Temporal actions per one-step run" (`BENCH_ONLY=actions`; also part of the
 * full `npm run bench`), on a platform of its own:
 *
 *   a one-step run (`run: "true"`) of a repository without webhooks, against its peer in the same
 *   run: the same pipeline in a repository with a `workflow_run` webhook (a local receiver), which
 *   still gets the two webhook-dispatch children every run had before issue 11.
 *
 * Counted from the Temporal dev server's own Prometheus metrics (its `/metrics`, found on the
 * server process's listening ports): workflow tasks + activity tasks that workers answered (the
 * frontend's `service_requests` of RespondWorkflowTask… / RespondActivityTask…, our namespace;
 * matching's `poll_success` would miss activities handed out eagerly with a workflow task's reply)
 * and the server's `action` counter (what Temporal Cloud bills). Each figure is the difference around one run, from the push until the server is
 * quiet again (the dispatch children outlive the run), cross-checked against the run's histories.
 * BENCH_ACTIONS_RUNS (default 5) runs per repository, alternating.
 */
import { existsSync, promises as fs, readdirSync, readlinkSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Client, Connection } from '@temporalio/client';
import { RunscDriver } from '../activities/sandbox/runsc-driver';
import { LIMITS_OUT_OF_THE_WAY, ownPlatformEnv } from '../infra/own-platform-env';
import { ROOT, startPlatform, type Platform } from '../infra/platform';
import { Api, benchTenant, fmtMs, fmtRatio, Git, intEnv, replaceSection, runIdsFrom, type RunView, sleep, stats, type Stats } from './lib';

export const ACTIONS_HEADING = '## Temporal actions per one-step run (issue 11)';
/** Issue 11's goal. */
export const GOAL_TASKS_PER_RUN = 20;
const OWNER = 'bench';
const RUNS = intEnv('BENCH_ACTIONS_RUNS', 5, 1, 50);
/** The server counts as quiet once its counters have not moved for this long. */
const QUIET_MS = 2500;

/** The counters of one scrape of the dev server's /metrics (our namespace only). */
interface Counters {
  workflowTasks: number;
  activityTasks: number;
  actions: number;
  byAction: Map<string, number>;
}

export function parseServerMetrics(text: string, namespace: string): Counters {
  const c: Counters = { workflowTasks: 0, activityTasks: 0, actions: 0, byAction: new Map() };
  for (const line of text.split('\n')) {
    const m = /^(\w+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m) continue;
    const [, name, labelText, raw] = m;
    if (name !== 'service_requests' && name !== 'action') continue;
    const labels = Object.fromEntries([...labelText!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (labels.namespace !== namespace) continue;
    const value = Number(raw);
    if (name === 'action') {
      c.actions += value;
      c.byAction.set(labels.action_type!, (c.byAction.get(labels.action_type!) ?? 0) + value);
    } else if (labels.service_name === 'frontend') {
      // A task's answer, whichever way it reached the worker (matching, or eagerly with the workflow task's reply).
      if (/^RespondWorkflowTask(Completed|Failed)$/.test(labels.operation ?? '')) c.workflowTasks += value;
      else if (/^RespondActivityTask(Completed|Failed|Canceled)(ById)?$/.test(labels.operation ?? '')) c.activityTasks += value;
    }
  }
  return c;
}

/** Ports a process listens on (TCP, from /proc), so the dev server's random metrics port can be found. */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const ports: number[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(table)) continue;
    for (const row of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = row.trim().split(/\s+/);
      if (f[3] === '0A' && inodes.has(f[9]!)) ports.push(parseInt(f[1]!.split(':')[1]!, 16));
    }
  }
  return ports;
}

async function findServerMetrics(pid: number): Promise<string> {
  for (const port of listeningPorts(pid)) {
    const url = `http://127.0.0.1:${port}/metrics`;
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (res.ok && (await res.text()).includes('service_name="frontend"')) return url;
    } catch {
      // the gRPC port, or the UI: not this one
    }
  }
  throw new Error(`no Prometheus /metrics among the ports of the Temporal dev server (pid ${pid})`);
}

interface Sample {
  workflowTasks: number;
  activityTasks: number;
  actions: number;
  byAction: Map<string, number>;
  /** The same tasks counted from the run's histories (pipeline + dispatch children). */
  historyTasks: number;
  children: number;
}

export interface ActionsBench {
  plain: Sample[];
  hooked: Sample[];
  deliveries: number;
  date: string;
  platformStartMs: number;
  loadBefore: number[];
  loadAfter: number[];
}

export async function runActionsBench(progress: (m: string) => void): Promise<string> {
  const dataDir = path.join(ROOT, '.bench-data', `actions-${process.pid}`);
  const scratch = path.join(dataDir, 'bench');
  await fs.rm(dataDir, { recursive: true, force: true });
  await fs.mkdir(path.join(scratch, 'home'), { recursive: true });
  const loadBefore = os.loadavg();
  const started = performance.now();
  // The peer's webhook receiver: answers 204 to every delivery.
  let deliveries = 0;
  const receiver = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      deliveries++;
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  progress(`actions: starting a platform in ${path.relative(ROOT, dataDir)}`);
  let platform: Platform | undefined;
  let connection: Connection | undefined;
  try {
    platform = await startPlatform({
      env: ownPlatformEnv(dataDir, { DOTGIT_RATE_LIMITS: LIMITS_OUT_OF_THE_WAY, DOTGIT_WEBHOOK_ALLOW_HOSTS: '127.0.0.1' }),
      log: { info: () => undefined, debug: () => undefined, warn: (m: string) => progress(`platform: ${m}`) },
      ephemeral: true,
    });
    const platformStartMs = performance.now() - started;
    const temporalPid = platform.backing.temporal?.pid;
    if (!temporalPid) throw new Error('the platform did not start its own Temporal dev server');
    const metricsUrl = await findServerMetrics(temporalPid);
    progress(`actions: platform up (${fmtMs(platformStartMs)}); Temporal metrics at ${metricsUrl}`);
    connection = await Connection.connect({ address: platform.temporalAddress });
    const temporal = new Client({ connection, namespace: platform.namespace });
    const api = new Api(platform.gatewayUrl);
    const token = await benchTenant(api, platform.adminToken, OWNER);
    const git = new Git(path.join(scratch, 'home'));
    const scrape = async () => parseServerMetrics(await (await fetch(metricsUrl)).text(), platform!.namespace);

    const repo = async (name: string) => {
      await api.call('POST', '/api/v1/repos', token, { owner: OWNER, name, visibility: 'private' });
      const work = path.join(scratch, name);
      await git.run(['init', '--quiet', '--initial-branch=main', work]);
      await fs.mkdir(path.join(work, '.dotgit'), { recursive: true });
      await fs.writeFile(path.join(work, '.dotgit', 'pipeline.yml'), 'jobs:\n  one:\n    steps:\n      - run: "true"\n');
      await git.run(['add', '-A'], work);
      await git.run(['commit', '--quiet', '-m', 'pipeline'], work);
      return { name, work, url: api.cloneUrl(OWNER, name, token) };
    };
    const plain = await repo('plain');
    const hooked = await repo('hooked');
    const port = (receiver.address() as AddressInfo).port;
    await api.call('POST', `/api/v1/repos/${OWNER}/hooked/webhooks`, token, { url: `http://127.0.0.1:${port}/hook`, secret: 'bench-secret', events: ['workflow_run'] });

    /** Waits until no counter has moved for QUIET_MS (the dispatch children outlive the run). */
    const quiet = async () => {
      let last = await scrape();
      let since = performance.now();
      const deadline = performance.now() + 120_000;
      while (performance.now() - since < QUIET_MS) {
        if (performance.now() > deadline) throw new Error('the Temporal server never went quiet');
        await sleep(250);
        const now = await scrape();
        if (now.actions !== last.actions || now.workflowTasks !== last.workflowTasks || now.activityTasks !== last.activityTasks) since = performance.now();
        last = now;
      }
      return last;
    };
    const historyTasks = async (runId: string) => {
      let tasks = 0;
      let children = 0;
      for (const id of [runId, `webhook:${runId}:requested`, `webhook:${runId}:completed`]) {
        let events;
        try {
          events = (await temporal.workflow.getHandle(id).fetchHistory()).events ?? [];
        } catch {
          continue; // no such child: the run started none
        }
        if (id !== runId) children++;
        tasks += events.filter((e) => e.workflowTaskStartedEventAttributes || e.activityTaskStartedEventAttributes).length;
      }
      return { tasks, children };
    };
    const oneRun = async (r: { name: string; work: string; url: string }, label: string): Promise<Sample> => {
      const before = await quiet();
      await git.run(['commit', '--quiet', '--allow-empty', '-m', label], r.work);
      const pushed = await git.run(['push', '--quiet', r.url, 'main'], r.work);
      const ids = runIdsFrom(pushed.stderr + pushed.stdout);
      if (ids.length !== 1) throw new Error(`push to ${r.name} announced ${ids.length} runs: ${pushed.stderr}`);
      const deadline = performance.now() + 120_000;
      for (;;) {
        const run = await api.call<RunView>('GET', `/api/v1/runs/${encodeURIComponent(ids[0]!)}`, token);
        if (run.status === 'success') break;
        if (run.status === 'failure' || run.status === 'cancelled') throw new Error(`run ${ids[0]} of ${r.name} ended ${run.status}: ${run.message ?? ''}`);
        if (performance.now() > deadline) throw new Error(`run ${ids[0]} of ${r.name} still ${run.status} after 2 min`);
        await sleep(100);
      }
      const after = await quiet();
      const byAction = new Map<string, number>();
      for (const [k, v] of after.byAction) if (v - (before.byAction.get(k) ?? 0) > 0) byAction.set(k, v - (before.byAction.get(k) ?? 0));
      const h = await historyTasks(ids[0]!);
      return {
        workflowTasks: after.workflowTasks - before.workflowTasks,
        activityTasks: after.activityTasks - before.activityTasks,
        actions: after.actions - before.actions,
        byAction,
        historyTasks: h.tasks,
        children: h.children,
      };
    };

    // Warm-up: the first push of each (the worker self-tests its sandbox on its first step).
    await oneRun(plain, 'warm-up');
    await oneRun(hooked, 'warm-up');
    const out: ActionsBench = { plain: [], hooked: [], deliveries: 0, date: new Date().toISOString(), platformStartMs, loadBefore, loadAfter: [] };
    for (let i = 0; i < RUNS; i++) {
      const pair: Array<[typeof plain, Sample[]]> = [
        [plain, out.plain],
        [hooked, out.hooked],
      ];
      for (const [r, into] of i % 2 === 0 ? pair : pair.reverse()) {
        const s = await oneRun(r, `run ${i}`);
        into.push(s);
        progress(`actions: ${r.name} run ${i + 1}/${RUNS}: ${s.workflowTasks} workflow + ${s.activityTasks} activity tasks, ${s.actions} actions (histories: ${s.historyTasks} tasks, ${s.children} children)`);
      }
    }
    out.deliveries = deliveries;
    out.loadAfter = os.loadavg();
    return renderActionsSection(out);
  } finally {
    await connection?.close().catch(() => undefined);
    receiver.close();
    await platform?.stop().catch((err: Error) => progress(`actions: stopping the platform failed: ${err.message}`));
    await RunscDriver.releaseState(path.join(dataDir, 'sandbox')).catch(() => undefined);
    await fs.rm(dataDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 }).catch(() => undefined);
    progress(existsSync(dataDir) ? `actions: ${dataDir} is left behind` : 'actions: platform stopped, data dir removed');
  }
}

/**
 * The same bench run once on the last commit before issue 11's change (the pipeline workflow then
 * started both dispatch children for every run), for the before/after figure.
 */
const BEFORE = { commit: 'd0b2428', date: '2026-12-04', plainTasks: 21, plainActions: 23, hookedTasks: 26, hookedActions: 25 };

const cell = (s: Stats) => (s.n === 0 ? '—' : s.min === s.max ? String(s.median) : `${s.median} (${s.min}–${s.max})`);

function renderActionsSection(b: ActionsBench): string {
  const tasks = (xs: Sample[]) => stats(xs.map((x) => x.workflowTasks + x.activityTasks));
  const plainTasks = tasks(b.plain);
  const hookedTasks = tasks(b.hooked);
  const plainActions = stats(b.plain.map((x) => x.actions));
  const hookedActions = stats(b.hooked.map((x) => x.actions));
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join('/');
  // The breakdown of the plain run whose total is the median.
  const typical = b.plain.find((x) => x.workflowTasks + x.activityTasks === plainTasks.median) ?? b.plain[0]!;
  const breakdown = [...typical.byAction].sort((x, y) => y[1] - x[1]).map(([k, v]) => `${k.replace(/^command_|^grpc_/, '')} ${v}`);
  return [
    ACTIONS_HEADING,
    '',
    'Reproduce with `BENCH_ONLY=actions npm run bench` (a platform of its own; rewrites only this section; the full `npm run bench` writes it too). `BENCH_ACTIONS_RUNS` (default 5) runs per repository, alternating.',
    '',
    `- date: ${b.date}; ${os.cpus().length} cores; Node ${process.version}; platform start-up ${fmtMs(b.platformStartMs)}; load average (1/5/15 min) at start ${load(b.loadBefore)}, at end ${load(b.loadAfter)}`,
    '',
    '| one-step run (`run: "true"`), per run | repository without webhooks | peer: same pipeline, repository with a `workflow_run` webhook | goal | result |',
    '|---|---|---|---|---|',
    `| workflow + activity tasks (Temporal server: answered tasks, \`service_requests\` Respond…) | ${cell(plainTasks)} | ${cell(hookedTasks)} | ≤ ${GOAL_TASKS_PER_RUN} | ${plainTasks.median <= GOAL_TASKS_PER_RUN ? '**met**' : '**not met**'} |`,
    `| … of which workflow tasks | ${cell(stats(b.plain.map((x) => x.workflowTasks)))} | ${cell(stats(b.hooked.map((x) => x.workflowTasks)))} | | |`,
    `| … of which activity tasks | ${cell(stats(b.plain.map((x) => x.activityTasks)))} | ${cell(stats(b.hooked.map((x) => x.activityTasks)))} | | |`,
    `| the same tasks counted from the run's histories (cross-check) | ${cell(stats(b.plain.map((x) => x.historyTasks)))} | ${cell(stats(b.hooked.map((x) => x.historyTasks)))} | | |`,
    `| Temporal \`action\` counter (billable actions) | ${cell(plainActions)} | ${cell(hookedActions)} | | |`,
    `| webhook-dispatch child workflows | ${cell(stats(b.plain.map((x) => x.children)))} | ${cell(stats(b.hooked.map((x) => x.children)))} | | |`,
    '',
    `- Without a webhook a run now costs ${plainTasks.median} tasks, ${fmtRatio(plainTasks.median / hookedTasks.median)} of the ${hookedTasks.median} a run with a \`workflow_run\` webhook costs; before issue 11 every run paid for the two webhook-dispatch children (each a workflow start, a planning activity and its workflow tasks) whether the repository had hooks or not. ` +
      `loadPipeline now answers whether the repository has a \`workflow_run\` hook, and the pipeline workflow (behind \`patched('webhooks-only-when-hooked')\`) starts the children only then. The peer's receiver got ${b.deliveries} deliveries.`,
    `- Before issue 11 (the same bench on commit ${BEFORE.commit}, ${BEFORE.date}): a run without webhooks cost ${BEFORE.plainTasks} tasks and ${BEFORE.plainActions} actions (median of 5; its peer with a webhook ${BEFORE.hookedTasks} tasks, ${BEFORE.hookedActions} actions). ` +
      `Now: ${plainTasks.median} tasks (${fmtRatio(plainTasks.median / BEFORE.plainTasks)}) and ${plainActions.median} actions (${fmtRatio(plainActions.median / BEFORE.plainActions)}).`,
    `- What the remaining actions of a run without webhooks are (Temporal's \`action\` counter by type, one typical run): ${breakdown.join(', ')}. ` +
      'Most upserts are not ours: the SDK records each `patched()` id a workflow passes in the `TemporalChangeVersion` search attribute, one upsert (one action) per patch id the first time, so every versioning patch costs each new run an action until it is deprecated (`deprecatePatch`) once no history that needs it can be running; the other two are the run\'s status attribute (running, then the result).',
    '- Method: the counters are scraped from the dev server\'s `/metrics` (found among the ports of its process) before the push and once they have stood still for ' +
      `${QUIET_MS / 1000} s after the run reported \`success\` (the dispatch children finish after the run); only namespace \`dotgit\`. Tasks are the frontend's answered tasks (RespondWorkflowTaskCompleted/Failed, RespondActivityTaskCompleted/Failed/Canceled), because activities the orchestration worker gets eagerly with its workflow task's reply never pass matching (its \`poll_success\`). Background workflows (schedules) can add to a sample; the median keeps them out.`,
    '',
  ].join('\n');
}

/** Replaces (or appends) this section of BENCHMARKS.md. */
export function replaceActionsSection(doc: string, section: string): string {
  return replaceSection(doc, ACTIONS_HEADING, section);
}
