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
 * The commit `sha` peels to (annotated tags peel) and `file` at it, from one `git cat-file --batch`:
 * it names the commit, then the file with its size; a file over `maxBytes` is not read (the process
 * is stopped at the file's header), so a huge blob pushed by a user never reaches memory. Recording a
 * push asks this for every ref (git starts are most of its cost; ADR 0047). Undefined when `sha` is
 * not a commit.
 */
export async function commitAndFile(gitDir: string, sha: string, file: string, maxBytes: number): Promise<CommitFile | undefined> {
  if (!/^[0-9a-f]{40,64}$/.test(sha)) throw new Error(`not an object id: ${sha}`);
  const child = spawn('git', ['--git-dir', gitDir, 'cat-file', '--batch=%(objectname) %(objecttype) %(objectsize)'], { stdio: ['pipe', 'pipe', 'ignore'] });
  child.stdin.on('error', () => undefined);
  child.stdin.end(`${sha}^{commit}\n${sha}^{commit}:${file}\n`);
  return new Promise((resolve, reject) => {
    const reader = new BatchAnswer(file, maxBytes);
    let settled = false;
    const settle = (found: CommitFile | undefined) => {
      if (settled) return;
      settled = true;
      if (child.exitCode === null) child.kill();
      resolve(found);
    };
    child.stdout.on('data', (chunk: Buffer) => {
      const found = reader.take(chunk);
      if (found !== PENDING) settle(found);
    });
    child.on('error', (err) => {
      settled = true;
      reject(err);
    });
    // Output ended before an answer (no such repository, git failed): as if the commit were unknown,
    // or, once the commit was named, as if it had no such file.
    child.on('close', () => settle(reader.commit ? { commit: reader.commit } : undefined));
  });
}

const PENDING = Symbol('pending');

/** `cat-file --batch` output for "<sha>^{commit}" then "<sha>^{commit}:<file>", read as it arrives. */
class BatchAnswer {
  commit?: string;
  private buffered: Buffer = Buffer.alloc(0);
  private step: 'commit header' | 'commit body' | 'file header' | 'file body' = 'commit header';
  private skip = 0;
  private size = 0;

  constructor(private readonly file: string, private readonly maxBytes: number) {}

  take(chunk: Buffer): CommitFile | undefined | typeof PENDING {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    for (;;) {
      if (this.step === 'commit body') {
        // The commit's own text is not needed: skipped as it arrives, never kept.
        const n = Math.min(this.skip, this.buffered.length);
        this.buffered = this.buffered.subarray(n);
        this.skip -= n;
        if (this.skip > 0) return PENDING;
        this.step = 'file header';
        continue;
      }
      if (this.step === 'file body') {
        if (this.buffered.length < this.size) return PENDING;
        return { commit: this.commit!, text: this.buffered.subarray(0, this.size).toString('utf8') };
      }
      const eol = this.buffered.indexOf(10);
      if (eol < 0) return PENDING;
      const header = /^([0-9a-f]{40,64}) ([a-z]+) (\d+)$/.exec(this.buffered.subarray(0, eol).toString('utf8'));
      this.buffered = this.buffered.subarray(eol + 1);
      if (this.step === 'commit header') {
        // "<input> missing", or an object that does not peel to a commit.
        if (!header || header[2] !== 'commit') return undefined;
        this.commit = header[1];
        this.skip = Number(header[3]) + 1; // the body and its newline
        this.step = 'commit body';
        continue;
      }
      // No such path, or a tree by that name: the commit without the file.
      if (!header || header[2] !== 'blob') return { commit: this.commit! };
      this.size = Number(header[3]);
      if (this.size > this.maxBytes) return { commit: this.commit!, tooLarge: new FileTooLargeError(`${this.file} is ${this.size} bytes; at most ${this.maxBytes} are allowed`) };
      this.step = 'file body';
    }
  }
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
