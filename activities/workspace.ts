import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';

/** Host directory of one job's workspace; steps of a job share it, as GitHub Actions users expect. */
export function workspaceDir(workspacesRoot: string, runId: string, job: string): string {
  const safe = runId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 80);
  const digest = createHash('sha256').update(runId).digest('hex').slice(0, 12);
  return path.join(workspacesRoot, `${safe}-${digest}`, job);
}

/**
 * Fills `dir` with the files of a commit from its `git archive` tar (activities/sandbox/source-cache.ts):
 * no .git, nothing of the server's repository.
 */
export async function extractArchive(tarFile: string, dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await run('tar', ['-x', '--no-same-owner', '-C', dir, '-f', tarFile]);
  // Steps may run as an unprivileged user inside the sandbox; the workspace is theirs to write.
  await fs.chmod(dir, 0o777);
}

/** Thrown when an artifact path points outside the workspace or at a symbolic link. */
export class UnsafeArtifactError extends Error {
  override readonly name = 'UnsafeArtifactError';
}

/**
 * Regular files named by an artifact entry (a file or a directory, walked). Symbolic links are
 * refused: a step could point one at a host file that the worker, outside the sandbox, would read.
 */
export async function artifactFiles(workspace: string, entry: string): Promise<string[]> {
  const root = path.resolve(workspace);
  const target = path.resolve(root, entry);
  if (target !== root && !target.startsWith(root + path.sep)) throw new UnsafeArtifactError(`artifact ${entry} is outside the workspace`);
  // Every component must be a real directory/file, not a link.
  let cur = root;
  for (const part of path.relative(root, target).split(path.sep).filter(Boolean)) {
    cur = path.join(cur, part);
    const st = await fs.lstat(cur).catch(() => undefined);
    if (!st) return [];
    if (st.isSymbolicLink()) throw new UnsafeArtifactError(`artifact ${entry} is or passes through a symbolic link`);
  }
  const out: string[] = [];
  const walk = async (p: string): Promise<void> => {
    const st = await fs.lstat(p);
    if (st.isFile()) out.push(path.relative(root, p));
    else if (st.isDirectory()) for (const e of await fs.readdir(p)) await walk(path.join(p, e));
  };
  await walk(target);
  return out.sort();
}

/**
 * The mount points in /proc/self/mounts. The kernel writes a space, tab, newline or backslash in a
 * path as an octal escape (\040…): decoded, since job names (matrix instances such as
 * `test (18, pg)`) may contain spaces.
 */
export async function mountPoints(): Promise<string[]> {
  const mounts = await fs.readFile('/proc/self/mounts', 'utf8').catch(() => '');
  return mounts
    .split('\n')
    .map((line) => line.split(' ')[1])
    .filter((p): p is string => Boolean(p))
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))));
}

/** Whether `dir` is itself a mount point (an exact entry in /proc/self/mounts). */
export async function isMountPoint(dir: string): Promise<boolean> {
  const target = path.resolve(dir);
  return (await mountPoints()).includes(target);
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')}: ${err.trim() || `exit ${code}`}`))));
  });
}

/** Mounts a size-capped tmpfs at `dir` (made if missing) unless one is there already. Needs root. */
export async function mountTmpfs(dir: string, sizeBytes: number): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  if (await isMountPoint(dir)) return;
  await run('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes},mode=0777,nosuid,nodev`, 'tmpfs', dir]);
}

/** Unmounts `dir` if it is a mount point (lazily: a sandbox that still holds it lets go when it ends). */
export async function unmountIfMounted(dir: string): Promise<void> {
  if (await isMountPoint(dir)) await run('umount', ['-l', dir]);
}

/** Unmounts every mount point below `root` (deepest first): before a data directory is removed. */
export async function unmountAllUnder(root: string): Promise<void> {
  const prefix = path.resolve(root) + path.sep;
  const below = (await mountPoints()).filter((p) => p.startsWith(prefix)).sort((a, b) => b.length - a.length);
  for (const p of below) await run('umount', ['-l', p]).catch(() => undefined);
}
