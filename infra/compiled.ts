import { spawn } from 'node:child_process';
import path from 'node:path';
import type { ProvisionLog } from './provision/log';
import { ROOT } from './root';

/** Where the production build (infra/build.cjs, ADR 0029) writes: the services' JavaScript and the workflow bundles. */
export const BUILD_DIR = path.join(ROOT, 'dist');

/** The compiled file of a source entry point: `gateway/main.ts` -> `<root>/dist/gateway/main.js`. */
export function compiledEntry(entry: string): string {
  return path.join(BUILD_DIR, entry.replace(/\.ts$/, '.js'));
}

/**
 * Compiles what changed since the last build (a few milliseconds when nothing did), in a process of
 * its own so esbuild and webpack never load into the runner. Its lines go to `log`.
 */
export function ensureBuilt(log: ProvisionLog): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'infra', 'build.cjs')], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stdout.on('data', (d: Buffer) => d.toString().split('\n').filter(Boolean).forEach((l) => log.info(l.replace(/^dotgit: /, ''))));
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`the build failed (infra/build.cjs exited ${code}):\n${err}`))));
  });
}
