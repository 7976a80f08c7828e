import { spawn } from 'node:child_process';
import path from 'node:path';
import { assertValidName } from './names';

/** Bare repository path of `owner/repo`; both names are validated before the path is built. */
export function repoPath(reposDir: string, owner: string, repo: string): string {
  return path.join(reposDir, assertValidName('owner', owner), `${assertValidName('repo', repo)}.git`);
}

export interface GitResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** Runs the `git` binary to completion (small outputs only; packs are streamed elsewhere). */
export function runGit(args: string[], options: { cwd?: string; input?: string | Buffer; env?: NodeJS.ProcessEnv } = {}): Promise<GitResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, { cwd: options.cwd, env: { ...process.env, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out), stderr: err }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

/** Reads one file at a commit; undefined when the commit has no such file. */
export async function readFileAtCommit(gitDir: string, commit: string, file: string): Promise<string | undefined> {
  if (!/^[0-9a-f]{40,64}$/.test(commit)) throw new Error(`not a commit id: ${commit}`);
  const r = await runGit(['--git-dir', gitDir, 'show', `${commit}:${file}`]);
  return r.code === 0 ? r.stdout.toString('utf8') : undefined;
}
