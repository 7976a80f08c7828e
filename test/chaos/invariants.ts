import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Client, Connection } from '@temporalio/client';
import { dataPaths, loadConfig } from '../../core/config';
import { createObjectStore } from '../../core/object-store-factory';
import type { ChaosPlatform } from './chaos-platform';
import { runGit, type PushRecord } from './load';

/**
 * What must hold after every fault (issue 10): every accepted push has exactly one run, every run
 * and deploy ends, no deploy ran twice, `git fsck` is clean, and no process outlived the one that
 * started it. Each check answers the violations it found, in words, so a failure says what broke.
 */

const RUN_TERMINAL = ['success', 'failure', 'cancelled'];
const DEPLOY_TERMINAL = ['success', 'failure', 'rolled_back', 'rejected', 'cancelled'];
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A push's run ids are `pipeline:<tenant>:<repo>:<hex>`; manual runs carry `manual-`. */
const isPushRun = (id: string) => !id.includes(':manual-');

/** Waits until no run or deploy of the tenant is still open; answers those still open at the deadline. */
export async function settle(cp: ChaosPlatform, timeoutMs: number): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let open: string[] = [];
  while (Date.now() < deadline) {
    try {
      const runs = await cp.db.query(`SELECT id, status FROM runs WHERE tenant_id = $1 AND status <> ALL($2)`, [cp.tenantId, RUN_TERMINAL]);
      const deploys = await cp.db.query(`SELECT id, status FROM deploys WHERE tenant_id = $1 AND status <> ALL($2)`, [cp.tenantId, DEPLOY_TERMINAL]);
      open = [...runs.rows, ...deploys.rows].map((r) => `${r.id} is still ${r.status}`);
      if (open.length === 0) return [];
    } catch (err) {
      open = [`could not read runs and deploys: ${(err as Error).message}`];
    }
    await sleep(1000);
  }
  return open;
}

/**
 * Every push the client saw succeed has exactly one run for its commit; no commit has two push
 * runs. A push whose hook could not record it (Postgres away) is recovered by the git-server's
 * journal reconciliation, after its grace period: missing runs get `patienceMs` to appear.
 */
export async function checkPushes(cp: ChaosPlatform, pushes: PushRecord[], patienceMs: number): Promise<{ problems: string[]; late: string[] }> {
  const started = Date.now();
  const late: string[] = [];
  let missing = new Set<PushRecord>();
  for (;;) {
    const problems = await pushProblems(cp, pushes, missing);
    for (const p of [...missing]) if (!problems.missingNow.has(p)) late.push(`${p.repo}@${p.commit.slice(0, 12)} got its run ${((Date.now() - p.at) / 1000).toFixed(0)} s after the push`);
    missing = problems.missingNow;
    if (missing.size === 0 || Date.now() - started > patienceMs) {
      if (late.length > 0) problems.list.push(...(await settle(cp, 180_000)));
      return { problems: problems.list, late };
    }
    await sleep(2000);
  }
}

async function pushProblems(cp: ChaosPlatform, pushes: PushRecord[], known: Set<PushRecord>): Promise<{ list: string[]; missingNow: Set<PushRecord> }> {
  const problems: string[] = [];
  const missingNow = new Set<PushRecord>();
  const rows = (
    await cp.db.query(`SELECT r.id, r.commit_sha, r.status, p.name AS repo FROM runs r JOIN repos p ON p.id = r.repo_id WHERE r.tenant_id = $1`, [cp.tenantId])
  ).rows.filter((r) => isPushRun(r.id));
  const byCommit = new Map<string, Array<{ id: string; status: string }>>();
  for (const r of rows) byCommit.set(`${r.repo}@${r.commit_sha}`, [...(byCommit.get(`${r.repo}@${r.commit_sha}`) ?? []), r]);
  for (const p of pushes.filter((x) => x.code === 0)) {
    const runs = byCommit.get(`${p.repo}@${p.commit}`) ?? [];
    if (runs.length === 0) missingNow.add([...known].find((k) => k.commit === p.commit && k.repo === p.repo) ?? p);
    if (runs.length !== 1) {
      const remote = p.output.split('\n').filter((l) => l.startsWith('remote:') || l.startsWith('error') || l.startsWith('To ')).join(' | ');
      problems.push(`accepted push of ${p.repo}@${p.commit.slice(0, 12)} has ${runs.length} runs (${runs.map((r) => r.id).join(', ')}); the client saw: ${remote.slice(0, 600)}`);
    }
  }
  for (const [key, runs] of byCommit) if (runs.length > 1) problems.push(`${key.slice(0, 60)} has ${runs.length} push runs: ${runs.map((r) => r.id).join(', ')}`);
  return { list: [...new Set(problems)], missingNow };
}

/** Runs and deploys that ended without success, with their messages (reported, and asserted where the drill expects success). */
export async function unsuccessful(cp: ChaosPlatform, since: Date): Promise<string[]> {
  const runs = await cp.db.query(`SELECT id, status, message FROM runs WHERE tenant_id = $1 AND created_at >= $2 AND status <> 'success'`, [cp.tenantId, since]);
  const deploys = await cp.db.query(`SELECT id, status, message FROM deploys WHERE tenant_id = $1 AND created_at >= $2 AND status <> 'success'`, [cp.tenantId, since]);
  const out: string[] = [];
  for (const r of [...runs.rows, ...deploys.rows]) out.push(`${r.id}: ${r.status}${r.message ? ` (${r.message})` : ''}: ${await diagnose(cp, r.id)}`);
  return out;
}

/**
 * No deploy ran twice: the deploy step appends to a marker in its job's workspace (kept across
 * the step's retries) and prints `completed=N`; the step's stored log (the object store's copy,
 * whole even when Redis lost live lines) must say N = 1 for every deploy whose step ended.
 */
export async function checkDeploysRanOnce(cp: ChaosPlatform, since: Date): Promise<{ checked: number; problems: string[] }> {
  const config = loadConfig(cp.platform.serviceEnv);
  const store = createObjectStore(config, dataPaths(config));
  const rows = (
    await cp.db.query(
      `SELECT d.id, d.status, s.log_key, s.status AS step_status FROM deploys d JOIN steps s ON s.tenant_id = d.tenant_id AND s.run_id = d.id AND s.job = 'deploy'
       WHERE d.tenant_id = $1 AND d.created_at >= $2 AND s.status IN ('success', 'failure')`,
      [cp.tenantId, since],
    )
  ).rows;
  const problems: string[] = [];
  for (const row of rows) {
    if (!row.log_key) {
      problems.push(`deploy ${row.id} (${row.status}): its step ended ${row.step_status} with no stored log`);
      continue;
    }
    const text = gunzipSync(await store.getBuffer(row.log_key)).toString('utf8');
    const ran = Math.max(0, ...[...text.matchAll(/^completed=(\d+)$/gm)].map((m) => Number(m[1])));
    if (ran > 1 || (row.step_status === 'success' && ran !== 1)) problems.push(`deploy ${row.id} (${row.status}): its step completed ${ran} times`);
  }
  return { checked: rows.length, problems };
}

/** Why a run or deploy did not succeed: its steps, and the activity failures in its Temporal history. */
export async function diagnose(cp: ChaosPlatform, id: string): Promise<string> {
  const steps = (await cp.db.query(`SELECT job, name, status, exit_code FROM steps WHERE tenant_id = $1 AND run_id = $2 ORDER BY position`, [cp.tenantId, id])).rows;
  const parts = [steps.map((s) => `${s.job}/${s.name} ${s.status} exit ${s.exit_code ?? '-'}`).join(', ')];
  const connection = await Connection.connect({ address: cp.platform.temporalAddress });
  try {
    const history = await new Client({ connection, namespace: cp.platform.namespace }).workflow.getHandle(id).fetchHistory();
    const types = new Map<string, string>();
    for (const e of history.events ?? []) {
      if (e.activityTaskScheduledEventAttributes) types.set(String(e.eventId), e.activityTaskScheduledEventAttributes.activityType?.name ?? '?');
      const f = e.activityTaskFailedEventAttributes ?? e.activityTaskTimedOutEventAttributes;
      if (f) {
        const failure = f.failure;
        parts.push(`${types.get(String(f.scheduledEventId)) ?? 'activity'} ${e.activityTaskFailedEventAttributes ? 'failed' : 'timed out'}: ${failure?.message ?? ''}${failure?.cause?.message ? ` (cause: ${failure.cause.message})` : ''}`);
      }
    }
  } catch (err) {
    parts.push(`no history: ${(err as Error).message}`);
  } finally {
    await connection.close();
  }
  return parts.join('; ').slice(0, 1500);
}

/** `git fsck` of every repository of the tenant on disk. */
export async function checkFsck(cp: ChaosPlatform): Promise<{ checked: number; problems: string[] }> {
  const root = path.join(cp.dataDir, 'repos', cp.tenant);
  const repos = readdirSync(root).filter((d) => d.endsWith('.git'));
  const problems: string[] = [];
  for (const r of repos) {
    const out = await runGit(['--git-dir', path.join(root, r), 'fsck', '--no-progress', '--no-dangling'], undefined, 120_000);
    if (out.code !== 0 || /error|missing|broken|corrupt/i.test(out.stdout + out.stderr)) problems.push(`git fsck ${r}: exit ${out.code}: ${(out.stdout + out.stderr).trim().slice(0, 500)}`);
  }
  return { checked: repos.length, problems };
}

interface Proc {
  pid: number;
  ppid: number;
  cmd: string;
}

function readProc(pid: number, dataDir: string): (Proc & { ours: boolean }) | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
    let cwd = '';
    let environ = '';
    try {
      cwd = readlinkSync(`/proc/${pid}/cwd`);
      environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
    } catch {
      // not readable: judged by its command line
    }
    const ours = cmd.includes(dataDir) || cwd.startsWith(dataDir) || environ.split('\0').includes(`DOTGIT_DATA_DIR=${dataDir}`);
    return { pid, ppid: Number(fields[1]), cmd, ours };
  } catch {
    return undefined;
  }
}

/**
 * Processes of this platform (its data dir on their command line, as working directory or in their
 * environment) that are no longer descendants of this test process: left behind by a killed parent.
 */
export function orphans(dataDir: string): Proc[] {
  const procs = new Map<number, Proc & { ours: boolean }>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const p = readProc(Number(name), dataDir);
    if (p) procs.set(p.pid, p);
  }
  const descends = (p: Proc) => {
    for (let cur: Proc | undefined = p, hops = 0; cur && hops < 64; cur = procs.get(cur.ppid), hops++) if (cur.ppid === process.pid) return true;
    return false;
  };
  return [...procs.values()].filter((p) => p.ours && p.pid !== process.pid && !descends(p)).map(({ pid, ppid, cmd }) => ({ pid, ppid, cmd: cmd.slice(0, 200) }));
}

/** Orphans still there after `graceMs` (a process that is just exiting gets that long). */
export async function lingeringOrphans(dataDir: string, graceMs: number): Promise<string[]> {
  const deadline = Date.now() + graceMs;
  let found = orphans(dataDir);
  while (found.length > 0 && Date.now() < deadline) {
    await sleep(500);
    found = orphans(dataDir);
  }
  return found.map((p) => `orphan pid ${p.pid} (parent ${p.ppid}): ${p.cmd}`);
}
