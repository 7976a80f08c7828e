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

/** Fills `dir` with the files of `commit` (`git archive | tar -x`): no .git, nothing of the server's repository. */
export async function checkout(gitDir: string, commit: string, dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await new Promise<void>((resolve, reject) => {
    const archive = spawn('git', ['--git-dir', gitDir, 'archive', '--format=tar', commit], { stdio: ['ignore', 'pipe', 'pipe'] });
    const tar = spawn('tar', ['-x', '--no-same-owner', '-C', dir], { stdio: ['pipe', 'ignore', 'pipe'] });
    let errors = '';
    archive.stderr.on('data', (d) => (errors += d));
    tar.stderr.on('data', (d) => (errors += d));
    archive.stdout.pipe(tar.stdin);
    let pending = 2;
    let failed = false;
    const done = (code: number | null) => {
      if (code !== 0) failed = true;
      if (--pending > 0) return;
      if (failed) reject(new Error(`checkout of ${commit} failed: ${errors.trim()}`));
      else resolve();
    };
    archive.on('close', done);
    tar.on('close', done);
    archive.on('error', reject);
    tar.on('error', reject);
  });
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
