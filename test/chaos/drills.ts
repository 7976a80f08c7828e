import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import type { BackingName } from '../../infra/platform';
import { startChaosPlatform, stopChaosPlatform, type ChaosPlatform } from './chaos-platform';
import { checkDeploysRanOnce, checkFsck, checkPushes, lingeringOrphans, orphans, settle, unsuccessful } from './invariants';
import { Load, LOAD_PIPELINE, PushedRepo, type PushRecord } from './load';

/**
 * The fault drills of the chaos suite. A drill injects one fault into a platform under load; the
 * runner measures recovery (fault → gateway /healthz green and a fresh push's run succeeded),
 * lets the load go on a little, stops it, waits for every run and deploy to end, and checks the
 * invariants. `test/chaos/short.test.ts` runs a few in `npm test`, `npm run chaos` all of them.
 */

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** How long a push cut between ref update and hook may take to get its run (a restart's reconciliation). */
const RECONCILE_WAIT_MS = 150_000;

const PROBE_PIPELINE = 'jobs:\n  probe:\n    steps:\n      - name: probe\n        run: echo probe $DOTGIT_COMMIT\n';

export interface Chaos {
  cp: ChaosPlatform;
  load: Load;
  probe: PushedRepo;
  /** Repositories only drills push to (the load never does). */
  drillRepo: PushedRepo;
  bigRepo: PushedRepo;
}

/** The tenant's repositories and the load, started. */
export async function prepareChaos(cp: ChaosPlatform): Promise<Chaos> {
  const loadRepos = [await PushedRepo.create(cp, 'load-a', LOAD_PIPELINE), await PushedRepo.create(cp, 'load-b', LOAD_PIPELINE)];
  const probe = await PushedRepo.create(cp, 'probe', PROBE_PIPELINE);
  const drillRepo = await PushedRepo.create(cp, 'drill', LOAD_PIPELINE);
  const bigRepo = await PushedRepo.create(cp, 'big', PROBE_PIPELINE);
  const load = new Load(cp, loadRepos);
  for (const r of [...loadRepos, probe, drillRepo, bigRepo]) {
    const first = load.record(await r.commitAndPush());
    if (first.code !== 0) throw new Error(`first push of ${r.name} failed: ${first.output}`);
  }
  return { cp, load, probe, drillRepo, bigRepo };
}

export interface FaultOutcome {
  /** When the fault hit (epoch ms). */
  at: number;
  /** For faults that take a part away for a while: when it was given back. */
  restoredAt?: number;
  /** What the drill does once the platform recovered, before waiting for everything to end (approve a deploy). */
  resolve?: () => Promise<string[]>;
  /** Drill-specific checks once every run and deploy ended; answers violations. */
  verify?: () => Promise<string[]>;
}

export interface Drill {
  name: string;
  /** What is done, for the report. */
  fault: string;
  inject(c: Chaos): Promise<FaultOutcome>;
}

export interface DrillReport {
  drill: string;
  fault: string;
  /** Seconds from the fault until /healthz answered 200 for good. */
  healthzS: number;
  /** Seconds from the fault until a push made after it had a successful run. */
  recoveredS: number;
  /** Seconds the part was away (stop-type faults). */
  downS?: number;
  /** Parts /healthz named failing after the fault. */
  red: string[];
  /** Accepted pushes whose run came late (recovered by the git-server's reconciliation). */
  late: string[];
  /** Orphaned processes seen when the platform had recovered (they must end by themselves, soon). */
  orphansAtRecovery: string[];
  pushesAccepted: number;
  pushesFailed: number;
  deploys: number;
  apiFailed: number;
  notSuccessful: string[];
  violations: string[];
}

const pid = (c: Chaos, service: string) => {
  const p = c.cp.platform.services.get(service)?.pid;
  if (!p) throw new Error(`${service} is not running`);
  return p;
};

function waitForRunningStep(c: Chaos): Promise<void> {
  return waitUntil('a running step', 60_000, async () => (await c.cp.db.query(`SELECT 1 FROM steps WHERE tenant_id = $1 AND status = 'running' LIMIT 1`, [c.cp.tenantId])).rowCount! > 0);
}

async function waitUntil(what: string, timeoutMs: number, probe: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await Promise.resolve(probe()).catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

/** The deploy's status through the API (undefined while the API does not answer). */
async function deployStatus(c: Chaos, id: string): Promise<string | undefined> {
  const r = await c.cp.call('GET', `/api/v1/deploys/${encodeURIComponent(id)}`, undefined, { timeoutMs: 5000 }).catch(() => undefined);
  return r?.status === 200 ? r.body.status : undefined;
}

async function startDeploy(c: Chaos, environment: string): Promise<string> {
  const r = await c.cp.call('POST', `/api/v1/repos/${c.cp.tenant}/${c.drillRepo.name}/deploys`, { ref: 'main', environment });
  if (r.status !== 202) throw new Error(`deploy to ${environment}: ${r.status} ${r.text}`);
  return r.body.id;
}

/**
 * A backing service stopped, kept away for `downMs` (counted from the stop), and started again in
 * place. The stop comes while a step runs, so steps end (and record their results) while it is away.
 */
function awayAndBack(part: BackingName, downMs: number, name: string, fault: string): Drill {
  return {
    name,
    fault,
    async inject(c) {
      const service = c.cp.platform.backing[part];
      if (!service) throw new Error(`${part} is not one this platform started`);
      await waitForRunningStep(c);
      const at = Date.now();
      await service.stop();
      await sleep(Math.max(0, downMs - (Date.now() - at)));
      await service.start();
      return { at, restoredAt: Date.now() };
    },
  };
}

export const DRILLS = {
  /** (a) kill -9 the worker while a step runs. */
  workerKill: {
    name: 'worker kill -9',
    fault: 'SIGKILL of the worker while a step runs',
    async inject(c) {
      await waitForRunningStep(c);
      const at = Date.now();
      process.kill(pid(c, 'worker'), 'SIGKILL');
      return { at };
    },
  },
  /** (b) stop the Temporal server and start it again (same port, same SQLite file). */
  temporalRestart: awayAndBack('temporal', 0, 'Temporal restart', 'Temporal dev server stopped and started again in place'),
  /** (c) Redis away for a while. */
  redisStop: (downMs: number) => awayAndBack('redis', downMs, `Redis stopped ${downMs / 1000} s`, `redis-server stopped for ${downMs / 1000} s, then started again in place`),
  /** (d) Postgres fast shutdown and start again (same port, same data). */
  postgresRestart: awayAndBack('postgres', 0, 'Postgres restart', 'Postgres fast shutdown, started again in place'),
  /** (e) kill -9 the gateway while a large push streams through it. */
  gatewayKillMidPush: {
    name: 'gateway kill -9 mid-push',
    fault: 'SIGKILL of the gateway while a 24 MiB push streams through it',
    async inject(c) {
      const before = await tipOf(c.cp, c.bigRepo.name);
      let at = 0;
      let trace = '';
      let killed: Error | undefined;
      // A pack over http.postBuffer goes as a chunked POST (after a small probe POST): when git
      // prints that header, the pack is streaming through the gateway.
      const push = c.bigRepo.commitAndPush({
        extra: { 'blob.bin': randomBytes(24 * 1024 * 1024) },
        env: { GIT_TRACE_CURL: '1', GIT_TRACE_CURL_NO_DATA: '1' },
        onStderr: (chunk) => {
          if (at) return;
          trace = (trace + chunk).slice(-4096);
          if (!/Send header: Transfer-Encoding: chunked/.test(trace)) return;
          at = Date.now();
          try {
            process.kill(pid(c, 'gateway'), 'SIGKILL');
          } catch (err) {
            killed = err as Error;
          }
        },
      });
      const result = c.load.record(await push);
      if (killed) throw killed;
      if (!at) throw new Error(`the push never streamed its pack: ${result.output.slice(-2000)}`);
      return {
        at,
        verify: async () => {
          // Cut mid-push: either the push never landed, or it landed and has its one run.
          const tip = await tipOf(c.cp, c.bigRepo.name);
          const problems: string[] = [];
          if (tip !== before && tip !== result.commit) problems.push(`big repository's main is ${tip}, neither the old tip nor the pushed commit`);
          if (tip === result.commit && result.code !== 0) {
            const runs = await pushRunsOf(c.cp, c.bigRepo.name, result.commit);
            if (runs !== 1) problems.push(`the cut push landed (main = ${tip.slice(0, 12)}) but has ${runs} runs`);
          }
          return problems;
        },
      };
    },
  },
  /** (f) kill -9 the git-server after a push updated its refs and before post-receive recorded it. */
  gitServerKillAfterRefUpdate: {
    name: 'git-server kill -9 between ref update and hook',
    fault: 'SIGKILL of the git-server stalled (DOTGIT_TEST_STALL_AFTER_REF_UPDATE) after a push updated refs',
    async inject(c) {
      const gitServer = c.cp.platform.services.get('git-server')!;
      const clean = gitServer.env;
      const stallFile = path.join(c.cp.dataDir, 'chaos', `stall-${Date.now()}`);
      await fs.mkdir(path.dirname(stallFile), { recursive: true });
      // Every push would stall: the load's pushers wait while this git-server runs.
      await c.load.pausePushes(true);
      let at = 0;
      let pushed: PushRecord;
      try {
        gitServer.setEnv({ ...clean, DOTGIT_TEST_STALL_AFTER_REF_UPDATE: stallFile });
        await gitServer.restartNow();
        // The restart after the crash comes up without the stall.
        gitServer.setEnv(clean);
        const push = c.drillRepo.commitAndPush({ timeoutMs: 90_000 });
        await waitUntil(`the git-server to stall after updating refs (${stallFile}); does it support DOTGIT_TEST_STALL_AFTER_REF_UPDATE?`, 60_000, () => existsSync(stallFile));
        at = Date.now();
        process.kill(pid(c, 'git-server'), 'SIGKILL');
        pushed = c.load.record(await push);
      } finally {
        gitServer.setEnv(clean);
        await c.load.pausePushes(false);
      }
      return {
        at,
        verify: async () => {
          const problems: string[] = [];
          const tip = await tipOf(c.cp, c.drillRepo.name);
          if (tip !== pushed.commit) problems.push(`the stalled push's refs were not updated (main = ${tip}, pushed ${pushed.commit})`);
          // Reconciliation may take a pass or two (the git-server's journal grace); then the run must end too.
          await waitUntil('the cut push to get its run', RECONCILE_WAIT_MS, async () => (await pushRunsOf(c.cp, c.drillRepo.name, pushed.commit)) > 0).catch(() => undefined);
          problems.push(...(await settle(c.cp, 180_000)));
          const runs = await pushRunsOf(c.cp, c.drillRepo.name, pushed.commit);
          if (runs !== 1) problems.push(`the push cut between ref update and hook (client exit ${pushed.code}) has ${runs} runs, not 1 (waited up to ${RECONCILE_WAIT_MS / 1000} s after recovery)`);
          return problems;
        },
      };
    },
  },
  /** (g) kill -9 the api while one deploy waits for approval and another runs its step. */
  apiKillMidDeploy: {
    name: 'api kill -9 mid-deploy',
    fault: 'SIGKILL of the api while a deploy waits for approval and another runs its step',
    async inject(c) {
      const since = new Date();
      const waiting = await startDeploy(c, 'production');
      await waitUntil('the production deploy to wait for approval', 60_000, async () => (await deployStatus(c, waiting)) === 'waiting_approval');
      const running = await startDeploy(c, 'release');
      await waitUntil('the release deploy to run its step', 60_000, async () => (await deployStatus(c, running)) === 'running');
      const at = Date.now();
      process.kill(pid(c, 'api'), 'SIGKILL');
      return {
        at,
        resolve: async () => {
          // Approve once the api is back (the drill's recovery probe has seen the platform whole).
          let approved: { status: number; text: string } | undefined;
          for (let i = 0; i < 20 && approved?.status !== 200; i++) {
            approved = await c.cp.call('POST', `/api/v1/deploys/${encodeURIComponent(waiting)}/approve`, {}).catch((err) => ({ status: 0, text: String(err), body: undefined }));
            if (approved.status !== 200) await sleep(1000);
          }
          return approved?.status === 200 ? [] : [`approving ${waiting} after the api came back: ${approved?.status} ${approved?.text}`];
        },
        verify: async () => {
          const problems: string[] = [];
          for (const id of [waiting, running]) {
            const status = await deployStatus(c, id);
            if (status !== 'success') problems.push(`deploy ${id} ended ${status}, not success`);
          }
          const envs = (
            await c.cp.db.query(`SELECT environment, count(*)::int AS n FROM deploys WHERE tenant_id = $1 AND environment IN ('production', 'release') AND created_at >= $2 GROUP BY environment`, [c.cp.tenantId, since])
          ).rows;
          for (const e of envs) if (e.n !== 1) problems.push(`${e.n} deploys to ${e.environment}, requested 1`);
          return problems;
        },
      };
    },
  },
} satisfies Record<string, Drill | ((ms: number) => Drill)>;

async function tipOf(cp: ChaosPlatform, repo: string): Promise<string> {
  return (await fs.readFile(path.join(cp.repoDir(repo), 'refs', 'heads', 'main'), 'utf8').catch(async () => {
    const packed = await fs.readFile(path.join(cp.repoDir(repo), 'packed-refs'), 'utf8');
    return / refs\/heads\/main$/m.test(packed) ? packed.split('\n').find((l) => l.endsWith(' refs/heads/main'))!.split(' ')[0] : '';
  })).trim();
}

async function pushRunsOf(cp: ChaosPlatform, repo: string, commit: string): Promise<number> {
  const r = await cp.db.query(`SELECT r.id FROM runs r JOIN repos p ON p.id = r.repo_id WHERE r.tenant_id = $1 AND p.name = $2 AND r.commit_sha = $3`, [cp.tenantId, repo, commit]);
  return r.rows.filter((x) => !String(x.id).includes(':manual-')).length;
}

/** /healthz every 200 ms: when it last turned green, and which parts it named failing meanwhile. */
class HealthWatch {
  private lastGreenSince: number | undefined;
  private active = true;
  private readonly done: Promise<void>;
  readonly failing = new Set<string>();

  constructor(url: string, from: number) {
    this.lastGreenSince = undefined;
    this.done = (async () => {
      while (this.active) {
        const answer = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) }).then(
          async (r) => ({ ok: r.status === 200, failing: r.status === 200 ? [] : (((await r.json().catch(() => ({}))) as { failing?: string[] }).failing ?? [`HTTP ${r.status}`]) }),
          () => ({ ok: false, failing: ['(no answer in 2 s)'] }),
        );
        answer.failing.forEach((f) => this.failing.add(f));
        if (!answer.ok) this.lastGreenSince = undefined;
        else this.lastGreenSince ??= Math.max(Date.now(), from);
        await sleep(200);
      }
    })();
  }

  get greenSince(): number | undefined {
    return this.lastGreenSince;
  }

  async stop(): Promise<void> {
    this.active = false;
    await this.done;
  }
}

/** Pushes to the probe repository until a push made now gets a successful run; answers when. */
async function probeRecovery(c: Chaos, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const push = c.load.record(await c.probe.commitAndPush({ timeoutMs: 60_000 }));
    if (push.code === 0) {
      const end = Math.min(deadline, Date.now() + 120_000);
      while (Date.now() < end) {
        const r = await c.cp.call('GET', `/api/v1/repos/${c.cp.tenant}/${c.probe.name}/runs?commit=${push.commit}`, undefined, { timeoutMs: 5000 }).catch(() => undefined);
        const status = r?.status === 200 ? r.body.runs[0]?.status : undefined;
        if (status === 'success') return Date.now();
        if (status === 'failure' || status === 'cancelled') break;
        await sleep(250);
      }
    }
    await sleep(500);
  }
  throw new Error(`no push made after the fault got a successful run within ${timeoutMs} ms`);
}

/** One drill from fault to verdict; the report row says what was measured and what broke. */
export async function runDrill(c: Chaos, drill: Drill, opts: { warmupMs?: number; afterMs?: number } = {}): Promise<DrillReport> {
  const since = new Date();
  const pushesBefore = c.load.pushes.length;
  const deploysBefore = c.load.deploys.length;
  const apiFailedBefore = c.load.apiFailed;
  c.load.start();
  progress(`${drill.name}: load running`);
  await sleep(opts.warmupMs ?? 3000);
  const watch = new HealthWatch(c.cp.platform.gatewayUrl, Date.now());
  let outcome: FaultOutcome;
  let recoveredAt: number;
  try {
    outcome = await drill.inject(c);
    recoveredAt = await probeRecovery(c, 300_000);
  } finally {
    await sleep(opts.afterMs ?? 3000);
    await c.load.stop();
  }
  const healthyAt = watch.greenSince ?? Date.now();
  await watch.stop();
  // Processes the fault left without a parent, seen at recovery; the invariant is that none lingers.
  const orphansAtRecovery = orphans(c.cp.dataDir);
  progress(`${drill.name}: /healthz green after ${((healthyAt - outcome.at) / 1000).toFixed(1)} s, a fresh push's run succeeded after ${((recoveredAt - outcome.at) / 1000).toFixed(1)} s; checking`);

  const violations: string[] = [];
  if (outcome.resolve) violations.push(...(await outcome.resolve()));
  violations.push(...(await settle(c.cp, 240_000)));
  if (outcome.verify) violations.push(...(await outcome.verify()));
  const pushes = await checkPushes(c.cp, c.load.pushes, RECONCILE_WAIT_MS);
  violations.push(...pushes.problems);
  const deploys = await checkDeploysRanOnce(c.cp, since);
  violations.push(...deploys.problems);
  violations.push(...(await checkFsck(c.cp)).problems);
  violations.push(...(await lingeringOrphans(c.cp.dataDir, 15_000)));
  // The load's steps cannot fail on their own: a run or deploy that did not succeed failed because of the fault.
  const notSuccessful = await unsuccessful(c.cp, since);
  violations.push(...notSuccessful.map((n) => `did not succeed, though its steps always do: ${n}`));
  const made = c.load.pushes.slice(pushesBefore);
  progress(`${drill.name}: ${violations.length} violations`);
  return {
    drill: drill.name,
    fault: drill.fault,
    healthzS: Math.max(0, healthyAt - outcome.at) / 1000,
    recoveredS: (recoveredAt - outcome.at) / 1000,
    downS: outcome.restoredAt ? (outcome.restoredAt - outcome.at) / 1000 : undefined,
    red: [...watch.failing].sort(),
    pushesAccepted: made.filter((p) => p.code === 0).length,
    pushesFailed: made.filter((p) => p.code !== 0).length,
    late: pushes.late,
    orphansAtRecovery: orphansAtRecovery.map((o) => `pid ${o.pid}: ${o.cmd}`),
    deploys: c.load.deploys.length - deploysBefore,
    apiFailed: c.load.apiFailed - apiFailedBefore,
    notSuccessful,
    violations,
  };
}

/** Progress on stderr as it happens (jest holds console output of a test back until its end). */
function progress(line: string): void {
  process.stderr.write(`[chaos ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

export function reportTable(rows: DrillReport[]): string {
  const head = ['fault', 'part away s', '/healthz green s', 'push→run ok s', '/healthz named', 'pushes ok/failed', 'deploys', 'API errors', 'not success', 'violations'];
  const body = rows.map((r) => [
    r.drill,
    r.downS === undefined ? '-' : r.downS.toFixed(1),
    r.healthzS.toFixed(1),
    r.recoveredS.toFixed(1),
    r.red.join(',') || '-',
    `${r.pushesAccepted}/${r.pushesFailed}`,
    String(r.deploys),
    String(r.apiFailed),
    String(r.notSuccessful.length),
    String(r.violations.length),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  const details = rows.flatMap((r) => [
    ...r.violations.map((v) => `  ${r.drill}: VIOLATION ${v}`),
    ...r.late.map((v) => `  ${r.drill}: late run ${v}`),
    ...r.orphansAtRecovery.map((v) => `  ${r.drill}: orphan at recovery (ended later) ${v}`),
  ]);
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line), ...details].join('\n');
}

/**
 * A jest suite of drills on a platform of its own, one test per fault, in order; the table of
 * measured recovery times is printed at the end.
 */
export function defineChaosSuite(label: string, drills: Drill[]): void {
  let cp: ChaosPlatform;
  let chaos: Chaos;
  const reports: DrillReport[] = [];

  beforeAll(async () => {
    cp = await startChaosPlatform(label);
    chaos = await prepareChaos(cp);
  }, 300_000);

  afterAll(async () => {
    if (reports.length) console.log(`chaos (${label}) recovery:\n${reportTable(reports)}`);
    await chaos?.load.stop();
    await stopChaosPlatform(cp);
  }, 120_000);

  test.each(drills.map((d) => [d.name, d] as const))('%s: the platform recovers and keeps every promise', async (_name, drill) => {
    const report = await runDrill(chaos, drill);
    reports.push(report);
    expect(report.violations).toEqual([]);
  }, 900_000);
}
