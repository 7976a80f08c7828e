/**
 * Sandbox state a killed worker leaves behind: runsc containers (still running the step it was
 * given), their OCI bundle folders, bubblewrap run folders, and job workspaces (tmpfs mounts on a
 * root worker). At worker start nothing of this process is running yet, so everything not owned by
 * a run still in progress goes; the hourly maintenance passes an age so it never touches a live step.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Db } from '../../core/db';
import { unfinishedDeployIds } from '../../core/stores/deploys-store';
import { unfinishedRunIds } from '../../core/stores/runs-store';
import { isMountPoint, mountPoints, unmountAllUnder, workspaceDir } from '../workspace';
import { locateRunsc } from './locate';

const execFileAsync = promisify(execFile);
const RUNSC_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };

/** Prefix of the container ids (and bundle folder names) the runsc driver makes. */
export const CONTAINER_PREFIX = 'dotgit-';

/**
 * A safe `olderThanMs` for periodic pruning while steps run: longer than a step activity may last
 * (3 h start-to-close, workflows/step-runner.ts) plus the gaps between a job's steps.
 */
export const PERIODIC_PRUNE_MIN_AGE_MS = 6 * 60 * 60 * 1000;

/** Paths of sandbox state in use by steps of this process (bundles, bwrap run folders, workspaces); never pruned. */
const inUse = new Set<string>();

/** Marks `p` as in use until the returned function is called. */
export function holdSandboxPath(p: string): () => void {
  const abs = path.resolve(p);
  inUse.add(abs);
  return () => inUse.delete(abs);
}

export interface PruneOrphansOptions {
  /** The worker's sandbox state directory (`dataPaths(config).sandbox`): `bundles/`, `bwrap/`, `runsc-root/`. */
  stateDir: string;
  /** Root of the job workspaces (`dataPaths(config).workspaces`); omit to leave workspaces alone. */
  workspacesDir?: string;
  /**
   * Only state untouched for at least this long is removed (by modification time; for runsc
   * containers, their creation time). 0, the default, removes everything not in use: right at
   * worker start only. Periodic callers pass at least PERIODIC_PRUNE_MIN_AGE_MS.
   */
  olderThanMs?: number;
  /**
   * Ids of runs and deploys still in progress: their workspaces are kept whatever their age (a step
   * retried after a worker crash reuses the job's workspace). See activeRunIdsFromDb.
   */
  activeRunIds?: () => Promise<Iterable<string>>;
  /** runsc binary used to list and remove stale containers; default: the one the driver would use. Skipped when none is installed. */
  runscPath?: string;
  /** Now, in ms since the epoch (tests). */
  now?: number;
}

export interface PruneReport {
  containers: string[];
  bundles: string[];
  bwrapRuns: string[];
  workspaces: string[];
  unmounted: string[];
}

/** Removes the sandbox state left by killed workers (see PruneOrphansOptions); answers what it removed. */
export async function pruneOrphanedSandboxState(options: PruneOrphansOptions): Promise<PruneReport> {
  const now = options.now ?? Date.now();
  const minAge = options.olderThanMs ?? 0;
  const report: PruneReport = { containers: [], bundles: [], bwrapRuns: [], workspaces: [], unmounted: [] };
  const oldEnough = async (p: string) => {
    if (inUse.has(path.resolve(p))) return false;
    if (minAge <= 0) return true;
    const st = await fs.lstat(p).catch(() => undefined);
    return st !== undefined && now - st.mtimeMs >= minAge;
  };

  const bundlesDir = path.join(options.stateDir, 'bundles');
  const runsc = options.runscPath ?? locateRunsc();
  if (runsc) report.containers = await pruneContainers(runsc, path.join(options.stateDir, 'runsc-root'), bundlesDir, now, minAge);

  for (const name of await listDir(bundlesDir)) {
    const p = path.join(bundlesDir, name);
    if (!name.startsWith(CONTAINER_PREFIX) || !(await oldEnough(p))) continue;
    await fs.rm(p, { recursive: true, force: true });
    report.bundles.push(name);
  }
  const bwrapDir = path.join(options.stateDir, 'bwrap');
  for (const name of await listDir(bwrapDir)) {
    const p = path.join(bwrapDir, name);
    if (!name.startsWith('run-') || !(await oldEnough(p))) continue;
    await fs.rm(p, { recursive: true, force: true });
    report.bwrapRuns.push(name);
  }

  if (options.workspacesDir) {
    const keep = new Set<string>();
    for (const id of (await options.activeRunIds?.()) ?? []) keep.add(path.basename(path.dirname(workspaceDir(options.workspacesDir, id, 'job'))));
    for (const name of await listDir(options.workspacesDir)) {
      const runDir = path.join(options.workspacesDir, name);
      if (keep.has(name) || !(await runDirOldEnough(runDir, oldEnough))) continue;
      // A tmpfs workspace is unmounted first: removing its files alone would leave the mount (and its memory).
      const mounts = await mountsUnder(runDir);
      await unmountAllUnder(runDir);
      report.unmounted.push(...mounts);
      await fs.rm(runDir, { recursive: true, force: true });
      report.workspaces.push(name);
    }
  }
  return report;
}

/** A run's workspace folder is stale when neither it nor anything directly in it is in use or recent
 * (a job's workspace is touched at each step start; a mount point's mtime is the tmpfs root's). */
async function runDirOldEnough(runDir: string, oldEnough: (p: string) => Promise<boolean>): Promise<boolean> {
  if (!(await oldEnough(runDir))) return false;
  for (const name of await listDir(runDir)) if (!(await oldEnough(path.join(runDir, name)))) return false;
  return true;
}

/**
 * Kills and deletes the runsc containers of our state root that are not in use. A worker killed
 * with -9 leaves `runsc run` and its sandbox running the old attempt's command, beside the retry.
 */
async function pruneContainers(runsc: string, root: string, bundlesDir: string, now: number, minAge: number): Promise<string[]> {
  if (!(await fs.stat(root).then(() => true, () => false))) return [];
  const flags = [`--root=${root}`];
  let listed: { id: string; created?: string; bundle?: string }[];
  try {
    const { stdout } = await execFileAsync(runsc, [...flags, 'list', '--format=json'], { env: RUNSC_ENV, timeout: 15_000 });
    listed = (JSON.parse(stdout || '[]') as typeof listed | null) ?? [];
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const c of listed) {
    if (!c.id.startsWith(CONTAINER_PREFIX) || inUse.has(path.join(path.resolve(bundlesDir), c.id))) continue;
    const created = c.created ? Date.parse(c.created) : NaN;
    if (minAge > 0 && !(now - created >= minAge)) continue;
    await execFileAsync(runsc, [...flags, 'kill', '--all', c.id, 'KILL'], { env: RUNSC_ENV, timeout: 15_000 }).catch(() => undefined);
    await execFileAsync(runsc, [...flags, 'delete', '--force', c.id], { env: RUNSC_ENV, timeout: 15_000 }).catch(() => undefined);
    removed.push(c.id);
  }
  return removed;
}

async function listDir(dir: string): Promise<string[]> {
  return fs.readdir(dir).catch(() => []);
}

async function mountsUnder(dir: string): Promise<string[]> {
  const prefix = path.resolve(dir) + path.sep;
  const out = (await mountPoints()).filter((p) => p.startsWith(prefix));
  if (await isMountPoint(dir)) out.push(path.resolve(dir));
  return out;
}

/** activeRunIds for PruneOrphansOptions: runs and deploys of every tenant that have not ended. */
export function activeRunIdsFromDb(db: Db | readonly Db[]): () => Promise<string[]> {
  // Runs live in their tenant's shard (ADR 0025): every database of the shard map is asked.
  const dbs: readonly Db[] = Array.isArray(db) ? db : [db as Db];
  return async () => (await Promise.all(dbs.flatMap((d) => [unfinishedRunIds(d), unfinishedDeployIds(d)]))).flat();
}
