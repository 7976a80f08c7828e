import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { aptInstall } from './apt';
import { ToolInstallError } from './errors';
import type { ProvisionLog } from './log';

const execFileAsync = promisify(execFile);

/** `git lfs version`'s first line (e.g. `git-lfs/3.3.0 (…)`), or null when git has no `lfs` command. */
export async function gitLfsVersion(): Promise<string | null> {
  try {
    const { stdout } = await execFileAsync('git', ['lfs', 'version'], { timeout: 30_000 });
    return stdout.trim().split('\n')[0] ?? '';
  } catch {
    return null;
  }
}

/**
 * Makes sure the `git lfs` client is installed (Debian package git-lfs) and returns its version.
 * The git-server implements the LFS API itself and does not need the client; the LFS tests and
 * pipeline checkouts of LFS content do. Throws ToolInstallError when it is missing and cannot be
 * installed (not root, no apt, or apt failed).
 */
export async function ensureGitLfs(log: ProvisionLog): Promise<string> {
  const have = await gitLfsVersion();
  if (have !== null) return have;
  if (process.getuid?.() !== 0) {
    throw new ToolInstallError('git-lfs is not installed; install the system package (Debian: `sudo apt-get install git-lfs`)');
  }
  log.info('git lfs not found; installing the Debian package git-lfs');
  if (!(await aptInstall(['git-lfs'], log))) throw new ToolInstallError('apt-get install git-lfs failed (see the log above)');
  const installed = await gitLfsVersion();
  if (installed === null) throw new ToolInstallError('apt-get installed git-lfs, but `git lfs version` still fails');
  return installed;
}
