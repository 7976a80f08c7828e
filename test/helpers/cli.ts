import { spawn } from 'node:child_process';
import path from 'node:path';
import { ROOT } from '../../infra/root';
import { platformInfo } from '../harness/platform-info';
import { tempDir } from './git';

/**
 * The `dotgit` command as a user runs it against the shared platform's gateway: with `token`, or
 * with no credentials at all when it is undefined (nothing inherited: no DOTGIT_TOKEN, no data dir
 * whose admin token the CLI would read), in a fresh working directory and config home, stdin
 * closed. Its exit code and output.
 */
export function runDotgit(args: string[], token: string | undefined): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, DOTGIT_URL: platformInfo().gatewayUrl, XDG_CONFIG_HOME: tempDir('dotgit-cli-xdg-') };
  delete env.DOTGIT_TOKEN;
  delete env.DOTGIT_DATA_DIR;
  if (token !== undefined) env.DOTGIT_TOKEN = token;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'cli', 'bin.cjs'), ...args], { cwd: tempDir('dotgit-cli-cwd-'), env });
    child.stdin.end();
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
