import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from '../../infra/root';
import { platformInfo } from '../harness/platform-info';
import { tempDir } from './git';

/**
 * The `dotgit` command as a user runs it against the shared platform's gateway with `token`, in a
 * fresh working directory and config home: its exit code and output.
 */
export async function runDotgit(args: string[], token: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env, DOTGIT_URL: platformInfo().gatewayUrl, DOTGIT_TOKEN: token, XDG_CONFIG_HOME: tempDir('dotgit-cli-xdg-') };
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [path.join(ROOT, 'cli', 'bin.cjs'), ...args], { env, cwd: tempDir() });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
