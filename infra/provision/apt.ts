import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { ProvisionLog } from './log';
import { findOnPath } from './which';

const execFileAsync = promisify(execFile);

// DEBIAN_FRONTEND: never prompt (CI has no stdin). RUNLEVEL=1: invoke-rc.d then does not start the
// distro's own services (a redis-server on 6379) when their packages are installed.
const ENV = { ...process.env, DEBIAN_FRONTEND: 'noninteractive', RUNLEVEL: '1' };
// Wait for a dpkg lock held by another apt (ours or the machine's) instead of failing at once.
const LOCK_WAIT = ['-o', 'DPkg::Lock::Timeout=600'];

let queue: Promise<unknown> = Promise.resolve();

/**
 * `apt-get install` of Debian packages, for provisioning as root. Calls are serialised within the
 * process (two provisioners installing at once broke dpkg's archive cache), and dpkg's lock is
 * waited for. A missing package index (fresh containers ship none) is fetched once and the install
 * retried. Resolves false, with the reason logged, when apt is unavailable or the install fails.
 */
export function aptInstall(packages: string[], log: ProvisionLog): Promise<boolean> {
  const run = queue.then(() => install(packages, log));
  queue = run.catch(() => undefined);
  return run;
}

async function install(packages: string[], log: ProvisionLog): Promise<boolean> {
  if (!findOnPath('apt-get')) {
    log.warn(`apt-get not found; install ${packages.join(' ')} with the system's package manager`);
    return false;
  }
  if (process.getuid?.() !== 0) {
    log.warn(`not root; run \`sudo apt-get install -y ${packages.join(' ')}\``);
    return false;
  }
  const args = ['-y', '-q', '--no-install-recommends', ...LOCK_WAIT, 'install', ...packages];
  log.info(`apt-get install ${packages.join(' ')}`);
  try {
    await execFileAsync('apt-get', args, { env: ENV, maxBuffer: 64 * 1024 * 1024 });
    return true;
  } catch {
    log.info('apt-get install failed; apt-get update and retry');
  }
  try {
    await execFileAsync('apt-get', ['-q', ...LOCK_WAIT, 'update'], { env: ENV, maxBuffer: 64 * 1024 * 1024 });
    await execFileAsync('apt-get', args, { env: ENV, maxBuffer: 64 * 1024 * 1024 });
    return true;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    log.warn(`apt-get install ${packages.join(' ')} failed: ${(e.stderr || e.message).trim().split('\n').slice(-5).join(' | ')}`);
    return false;
  }
}
