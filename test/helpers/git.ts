import { spawn } from 'node:child_process';
import { mkdtempSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { platformInfo } from '../harness/platform-info';

export interface GitOutput {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the real `git` client with no user config and no credential helpers or prompts. `timeoutMs`
 * kills it (a push into a part that is down must not hang a test); `onStderr` sees output as it comes.
 */
export function git(
  args: string[],
  cwd?: string,
  env: NodeJS.ProcessEnv = {},
  opts: { timeoutMs?: number; onStderr?: (chunk: string) => void } = {},
): Promise<GitOutput> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, {
      cwd,
      env: {
        PATH: process.env.PATH,
        HOME: os.tmpdir(),
        GIT_CONFIG_NOSYSTEM: '1',
        GIT_CONFIG_GLOBAL: '/dev/null',
        GIT_TERMINAL_PROMPT: '0',
        GIT_ASKPASS: '/bin/false',
        GIT_AUTHOR_NAME: 'Test',
        GIT_AUTHOR_EMAIL: 'test@example.com',
        GIT_COMMITTER_NAME: 'Test',
        GIT_COMMITTER_EMAIL: 'test@example.com',
        ...env,
      },
    });
    let stdout = '';
    let stderr = '';
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => {
      stderr += d;
      opts.onStderr?.(String(d));
    });
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

export function tempDir(prefix = 'dotgit-test-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Clone URL through the gateway, with the token as HTTP Basic password when given. */
export function cloneUrl(owner: string, repo: string, token?: string): string {
  return cloneUrlAt(platformInfo().gatewayUrl, owner, repo, token);
}

/** Clone URL through the gateway at `base` (a platform of a test's own), with the token as HTTP Basic password when given. */
export function cloneUrlAt(base: string, owner: string, repo: string, token?: string): string {
  const u = new URL(`${base}/${owner}/${repo}.git`);
  if (token) {
    u.username = 'x';
    u.password = token;
  }
  return u.toString();
}

/** A fresh local repository with the given files committed on `main`. */
export async function localRepo(files: Record<string, string>): Promise<string> {
  const dir = tempDir();
  await git(['init', '-q', '-b', 'main'], dir);
  await writeFiles(dir, files);
  await git(['add', '-A'], dir);
  const c = await git(['commit', '-q', '-m', 'initial'], dir);
  if (c.code !== 0) throw new Error(c.stderr);
  return dir;
}

export async function writeFiles(dir: string, files: Record<string, string>): Promise<void> {
  for (const [name, content] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await fs.writeFile(path.join(dir, name), content, { mode: name.endsWith('.sh') ? 0o755 : 0o644 });
  }
}

/** Every `dotgit: run <id> <url>` line of a push's output. */
export function runIdsFrom(pushOutput: string): string[] {
  return [...pushOutput.matchAll(/remote: dotgit: run (\S+) (\S+)/g)].map((m) => m[1]);
}
