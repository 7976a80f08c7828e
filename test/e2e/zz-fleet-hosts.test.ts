import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, uniqueName, waitForRun, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom, tempDir } from '../helpers/git';
import { isAlive } from '../helpers/procs';
import { ROOT } from '../../infra/root';
import { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { hostQueue, SANDBOX_QUEUE } from '../../core/run-types';

// Issue 11 (worker roles, host ids, jobs pinned to their host): a second, sandbox-only worker
// process with its own host id and data dir runs beside the platform's worker. Jobs whose later
// steps read what earlier steps wrote succeed on both hosts, each job on one; kill -9 of a host
// mid-step restarts its job on the other host ("restarted: host <id> lost"); SIGTERM drains: the
// step and the rest of its job finish there, the host exits, nothing restarts.

const info = platformInfo();
const HOST_B = `fleet-b-${process.pid}`;
let hostA: string;
let owner: TenantFixture;
let b: { child: ChildProcess; output: () => string } | undefined;
// Its own data dir: own workspaces, sandbox state and host-id file. Only the object store (logs,
// artifacts) is shared (DOTGIT_FS_OBJECTS_DIR, as a bucket would be); no repository disk: sources
// come from the git-server (ADR 0014).
const bDataDir = tempDir('fleet-host-b-');

async function polledBy(pid: number, queue: string): Promise<boolean> {
  const connection = await Connection.connect({ address: info.temporalAddress });
  try {
    const res = await connection.workflowService.describeTaskQueue({
      namespace: info.namespace,
      taskQueue: { name: queue },
      taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    });
    return (res.pollers ?? []).some((p) => p.identity?.startsWith(`${pid}@`));
  } finally {
    await connection.close();
  }
}

/** Every host b process started here. */
const started: ChildProcess[] = [];

/** Starts host b (roles: sandbox only) and waits until it polls. */
async function startHostB(): Promise<NonNullable<typeof b>> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'worker', 'main.ts')], {
    cwd: ROOT,
    env: {
      ...process.env,
      DOTGIT_DATA_DIR: bDataDir,
      DOTGIT_FS_OBJECTS_DIR: path.join(info.dataDir, 'objects'),
      DATABASE_URL: info.databaseUrl,
      REDIS_URL: info.redisUrl,
      TEMPORAL_ADDRESS: info.temporalAddress,
      TEMPORAL_NAMESPACE: info.namespace,
      DOTGIT_INTERNAL_SECRET: info.internalSecret,
      DOTGIT_GIT_UPSTREAMS: `http://127.0.0.1:${info.gitPort}`,
      DOTGIT_WORKER_ROLES: 'sandbox',
      DOTGIT_HOST_ID: HOST_B,
      DOTGIT_WORKER_PORT: '0',
      DOTGIT_WORKER_DRAIN_SECONDS: '90',
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.push(child);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  // Started once it polls both the shared sandbox queue and its own (the worker's identity is pid@host).
  const deadline = Date.now() + 60_000;
  while (!((await polledBy(child.pid!, SANDBOX_QUEUE)) && (await polledBy(child.pid!, hostQueue(HOST_B))))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`host b did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return { child, output: () => out };
}

/**
 * Jobs in one run that the platform's own sandbox host cannot all hold (it takes at most
 * DOTGIT_SANDBOX_CONCURRENCY = 8 jobs at once), so Temporal must hand some to host b; with fewer,
 * every job may land on the platform's host and the test would prove nothing (seen in CI).
 */
const JOBS_BEYOND_HOST_A = 10;

/** Three steps: the later ones read (and add to) what the earlier ones wrote in the job's workspace. */
function job(name: string, middle = 'true'): string {
  return [
    `  ${name}:`,
    '    steps:',
    '      - name: write',
    '        run: echo one > made.txt && sleep 1',
    '      - name: long',
    `        run: ${JSON.stringify(`${middle} && cat made.txt && echo two >> made.txt`)}`,
    '      - name: check',
    '        run: test "$(cat made.txt)" = "$(printf \'one\\ntwo\')"',
  ].join('\n');
}

function pipeline(jobs: number, middle?: string): string {
  return `jobs:\n${Array.from({ length: jobs }, (_, i) => job(`j${i}`, middle)).join('\n')}\n`;
}

async function push(yaml: string): Promise<string> {
  const repo = uniqueName('fleet');
  expect((await api('POST', '/api/v1/repos', { token: owner.token, body: { owner: owner.tenant, name: repo, visibility: 'private' } })).status).toBe(201);
  const work = await localRepo({ '.dotgit/pipeline.yml': yaml });
  const pushed = await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work);
  const [id] = runIdsFrom(pushed.stderr);
  if (!id) throw new Error(`no run: ${pushed.stderr}`);
  return id;
}

interface Step {
  job: string;
  name: string;
  status: string;
  host: string | null;
  attempt: number | null;
}

const runOf = async (id: string) => (await api('GET', `/api/v1/runs/${encodeURIComponent(id)}`, { token: owner.token })).body as { status: string; steps: Step[] };
const logOf = async (id: string, s: Pick<Step, 'job' | 'name'>) =>
  (await api('GET', `/api/v1/runs/${encodeURIComponent(id)}/logs?job=${s.job}&step=${s.name}`, { token: owner.token })).text;

function hostsByJob(steps: Step[]): Map<string, Set<string | null>> {
  const by = new Map<string, Set<string | null>>();
  for (const s of steps) by.set(s.job, (by.get(s.job) ?? new Set()).add(s.host));
  return by;
}

/** Waits until a `long` step runs on host b (answers it), or fails when the run ends first. */
async function longStepOnB(id: string): Promise<Step> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const run = await runOf(id);
    const s = run.steps.find((x) => x.name === 'long' && x.host === HOST_B && x.status === 'running');
    if (s && (await logOf(id, s)).includes('tick 2')) return s;
    if (['success', 'failure', 'cancelled'].includes(run.status)) throw new Error(`no job of run ${id} ran on ${HOST_B}: ${JSON.stringify(run.steps)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no long step started on ${HOST_B}`);
}

const exited = (child: ChildProcess) => new Promise<number | null>((r) => (child.exitCode !== null ? r(child.exitCode) : child.once('exit', (code) => r(code))));

beforeAll(async () => {
  owner = await createTenantWithAdmin();
  b = await startHostB();
  hostA = readFileSync(path.join(info.dataDir, 'host-id'), 'utf8').trim();
}, 90_000);

afterAll(() => {
  // Every host b this file started, also one a failed test left running: a stray sandbox host
  // would take later suites' jobs into a data dir of its own.
  for (const child of started) if (child.pid && isAlive(child.pid)) child.kill('SIGKILL');
});

test("jobs run on both hosts, every job's steps on one host, later steps reading what earlier ones wrote", async () => {
  const ids = await Promise.all([push(pipeline(3)), push(pipeline(3)), push(pipeline(3))]);
  const runs = await Promise.all(ids.map((id) => waitForRun(id, owner.token, 120_000)));
  const used = new Set<string | null>();
  for (const run of runs) {
    expect(run.status).toBe('success');
    expect(run.steps.filter((s: Step) => s.status !== 'success')).toEqual([]);
    for (const [jobName, hosts] of hostsByJob(run.steps)) {
      expect({ job: jobName, hosts: [...hosts] }).toEqual({ job: jobName, hosts: [expect.any(String)] });
      used.add([...hosts][0]);
    }
    expect(run.steps.every((s: Step) => s.attempt === 1)).toBe(true);
  }
  expect([...used].sort()).toEqual([hostA, HOST_B].sort());
  // Host b ran jobs with no repository disk: their commits came over the network into its source cache.
  expect(existsSync(path.join(bDataDir, 'repos'))).toBe(false);
  const cached = readdirSync(path.join(bDataDir, 'cache', 'sources'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.tar'));
  expect(cached.length).toBeGreaterThan(0);
}, 150_000);

test('kill -9 of a host mid-step: its job starts again from a fresh checkout on the other host, the log naming the lost host', async () => {
  // More jobs than the platform's host takes at once (DOTGIT_SANDBOX_CONCURRENCY, 8): host b surely gets some.
  const id = await push(pipeline(JOBS_BEYOND_HOST_A, 'for i in $(seq 1 30); do echo tick $i; sleep 0.5; done'));
  const onB = await longStepOnB(id);
  // Every job with a step on b when it dies (a first step of another job may run there too).
  const jobsOnB = new Set((await runOf(id)).steps.filter((s) => s.host === HOST_B).map((s) => s.job));
  b!.child.kill('SIGKILL');
  const killedAt = Date.now();
  await exited(b!.child);
  // Found lost (heartbeat timeout, then the host queue's schedule-to-start timeout) and started again, never left waiting.
  const restarted = async () => (await runOf(id)).steps.some((s) => s.job === onB.job && s.name === 'write' && s.host === hostA && (s.attempt ?? 0) > 1);
  while (!(await restarted())) {
    if (Date.now() - killedAt > 120_000) throw new Error(`job ${onB.job} did not restart within 120 s of the kill`);
    await new Promise((r) => setTimeout(r, 250));
  }
  const restartDelay = Date.now() - killedAt;
  console.log(`fleet: job restarted on ${hostA} ${(restartDelay / 1000).toFixed(1)} s after ${HOST_B} was killed`);
  expect(restartDelay).toBeLessThan(90_000);

  const run = await waitForRun(id, owner.token, 180_000);
  expect(run.status).toBe('success');
  const steps = run.steps as Step[];
  // The lost job ran again, all of it on the host that is left; its long step counts a second attempt.
  const again = steps.filter((s) => s.job === onB.job);
  expect(again.map((s) => `${s.name} ${s.status} ${s.host}`)).toEqual(['write', 'long', 'check'].map((n) => `${n} success ${hostA}`));
  expect(again.find((s) => s.name === 'long')!.attempt).toBe(2);
  expect(again.find((s) => s.name === 'write')!.attempt).toBe(2);
  const log = await logOf(id, onB);
  expect(log).toMatch(new RegExp(`^dotgit: restarted: host ${HOST_B} lost \\(.+\\); the job runs again from a fresh checkout on host ${hostA}$`, 'm'));
  expect(log).toContain('tick 30');
  // Every job ended on the host that is left; the jobs b never had were not run again.
  expect(steps.filter((s) => s.host !== hostA)).toEqual([]);
  const untouched = steps.filter((s) => !jobsOnB.has(s.job));
  expect(untouched.length).toBeGreaterThan(0);
  expect(untouched.filter((s) => s.attempt !== 1)).toEqual([]);
  for (const s of untouched.filter((x) => x.name === 'long')) expect(await logOf(id, s)).not.toContain('restarted');
}, 240_000);

test('SIGTERM of a host mid-step: the step and the rest of its job finish there, the host exits, nothing restarts', async () => {
  // Same host id and data dir: its start also clears what the killed process left.
  b = await startHostB();
  const id = await push(pipeline(JOBS_BEYOND_HOST_A, 'for i in $(seq 1 12); do echo tick $i; sleep 0.5; done'));
  const onB = await longStepOnB(id);
  b.child.kill('SIGTERM');
  const code = await exited(b.child);
  expect(code).toBe(0);
  expect(b.output()).toContain('worker draining');

  const run = await waitForRun(id, owner.token, 120_000);
  expect(run.status).toBe('success');
  const steps = run.steps as Step[];
  expect(steps.filter((s) => s.job === onB.job).map((s) => `${s.name} ${s.status} ${s.host} #${s.attempt}`)).toEqual(
    ['write', 'long', 'check'].map((n) => `${n} success ${HOST_B} #1`),
  );
  expect(steps.every((s) => s.attempt === 1)).toBe(true);
  expect(await logOf(id, onB)).toContain('tick 12');
  expect(await logOf(id, onB)).not.toContain('restarted');
}, 150_000);
