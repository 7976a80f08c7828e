import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import type { ProvisionLog } from './provision/log';
import { ROOT } from './root';

const execFileAsync = promisify(execFile);

/**
 * Builds the web console (console/build.cjs, ADR 0032) when its sources changed since the last
 * build; a few milliseconds otherwise. In a process of its own, so esbuild never loads into the runner.
 */
export async function ensureConsoleBuilt(log: ProvisionLog): Promise<void> {
  try {
    const { stdout } = await execFileAsync(process.execPath, [path.join(ROOT, 'console', 'build.cjs')], { cwd: ROOT });
    const line = stdout.trim();
    if (line && !line.endsWith('up to date')) log.info(line.replace(/^dotgit: /, ''));
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`the console build failed (console/build.cjs): ${(e.stderr || e.message).trim().slice(-2000)}`);
  }
}
