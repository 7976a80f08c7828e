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

/** Thrown when a file read from a repository is larger than the caller allows. */
export class FileTooLargeError extends Error {
  override readonly name = 'FileTooLargeError';
}

/**
 * Reads one file at a commit; undefined when the commit has no such file. The size is checked
 * first, so a huge blob pushed by a user is never read into memory (`commitAndFile`).
 */
export async function readFileAtCommit(gitDir: string, commit: string, file: string, maxBytes: number): Promise<string | undefined> {
  if (!/^[0-9a-f]{40,64}$/.test(commit)) throw new Error(`not a commit id: ${commit}`);
  const found = await commitAndFile(gitDir, commit, file, maxBytes);
  if (found?.tooLarge) throw found.tooLarge;
  return found?.text;
}

/** A pushed object peeled to its commit, and one file at that commit (`commitAndFile`). */
export interface CommitFile {
  commit: string;
  /** The file's text; undefined when the commit has no such file (or it is larger than allowed). */
  text?: string;
  /** Set, instead of `text`, when the file is larger than allowed. */
  tooLarge?: FileTooLargeError;
}

/**
 * The commit `sha` peels to (annotated tags peel) and `file` at it, in two git processes at most:
 * one `cat-file --batch-check` names both, one `cat-file blob` reads the file when it exists and
 * fits (a huge blob is never read). Recording a push asks this for every ref, where peeling,
 * sizing and reading took three. Undefined when `sha` is not a commit.
 */
export async function commitAndFile(gitDir: string, sha: string, file: string, maxBytes: number): Promise<CommitFile | undefined> {
  if (!/^[0-9a-f]{40,64}$/.test(sha)) throw new Error(`not an object id: ${sha}`);
  const check = await runGit(['--git-dir', gitDir, 'cat-file', '--batch-check'], { input: `${sha}^{commit}\n${sha}^{commit}:${file}\n` });
  const [commitLine = '', fileLine = ''] = check.stdout.toString('utf8').split('\n');
  const commit = /^([0-9a-f]{40,64}) commit \d+$/.exec(commitLine)?.[1];
  if (check.code !== 0 || !commit) return undefined;
  const blob = /^([0-9a-f]{40,64}) blob (\d+)$/.exec(fileLine);
  if (!blob) return { commit };
  const bytes = Number(blob[2]);
  if (bytes > maxBytes) return { commit, tooLarge: new FileTooLargeError(`${file} is ${bytes} bytes; at most ${maxBytes} are allowed`) };
  const r = await runGit(['--git-dir', gitDir, 'cat-file', 'blob', blob[1]]);
  return r.code === 0 ? { commit, text: r.stdout.toString('utf8') } : { commit };
}

/** The commit a pushed object points at (peels annotated tags); undefined if it is not a commit. */
export async function peelToCommit(gitDir: string, sha: string): Promise<string | undefined> {
  const r = await runGit(['--git-dir', gitDir, 'rev-parse', '--verify', '--quiet', `${sha}^{commit}`]);
  return r.code === 0 ? r.stdout.toString().trim() : undefined;
}

/**
 * What a user-given ref names: a branch, a tag, a full `refs/…` name or a commit id. Answers the
 * full ref (or the commit id itself) and the commit; undefined when nothing matches.
 */
export async function resolveRef(gitDir: string, ref: string): Promise<{ ref: string; commit: string } | undefined> {
  // Never an option, never a range or revision expression: only names git accepts as refs, or a full id.
  if (ref.length === 0 || ref.length > 255 || ref.startsWith('-') || /[\s~^:?*[\\]|\.\.|@\{/.test(ref)) return undefined;
  const candidates = /^[0-9a-f]{40,64}$/.test(ref) ? [ref] : ref.startsWith('refs/') ? [ref] : [`refs/heads/${ref}`, `refs/tags/${ref}`];
  for (const candidate of candidates) {
    const commit = await peelToCommit(gitDir, candidate);
    if (commit) return { ref: candidate, commit };
  }
  return undefined;
}
