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

/** The oldest git the git-server works with: `cat-file --batch-command` (commitAndFile) came in 2.36. */
export const MIN_GIT_VERSION: readonly [number, number] = [2, 36];

/** What is wrong with the git that printed this `git version` output; undefined when it will do. */
export function gitVersionProblem(output: string): string | undefined {
  const [major, minor] = MIN_GIT_VERSION;
  const m = /^git version (\d+)\.(\d+)/.exec(output.trim());
  if (!m) return `git version answered ${JSON.stringify(output.trim().slice(0, 100))}; git ≥ ${major}.${minor} is needed`;
  const found = [Number(m[1]), Number(m[2])];
  if (found[0] < major || (found[0] === major && found[1] < minor)) return `git ${found.join('.')} is too old: the git-server needs git ≥ ${major}.${minor} (Debian bookworm has 2.39)`;
  return undefined;
}

/**
 * Stops start-up on a git older than MIN_GIT_VERSION: with it every push would land but start no
 * pipeline (its pipeline file could not be read).
 */
export async function assertGitVersion(): Promise<void> {
  const problem = gitVersionProblem((await runGit(['version'])).stdout.toString('utf8'));
  if (problem) throw new Error(problem);
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
 * The commit `sha` peels to (annotated tags peel) and `file` at it, from one `git cat-file
 * --batch-command` (git ≥ 2.36): `info` names the commit and the file with its size, and the file's
 * `contents` are asked for only when it fits `maxBytes`, so git never reads a huge blob a user
 * pushed. Recording a push asks this for every ref (git starts are most of its cost; ADR 0047).
 * Undefined when `sha` is not a commit.
 */
export async function commitAndFile(gitDir: string, sha: string, file: string, maxBytes: number): Promise<CommitFile | undefined> {
  if (!/^[0-9a-f]{40,64}$/.test(sha)) throw new Error(`not an object id: ${sha}`);
  // A command is a line: a path with a line break would add commands of its own.
  if (/[\r\n]/.test(file)) throw new Error(`not a path git can be asked for on one line: ${JSON.stringify(file)}`);
  const child = spawn('git', ['--git-dir', gitDir, 'cat-file', '--batch-command=%(objectname) %(objecttype) %(objectsize)'], { stdio: ['pipe', 'pipe', 'ignore'] });
  const spawnFailed = new Promise<never>((_, reject) => child.on('error', reject));
  spawnFailed.catch(() => undefined);
  child.stdin.on('error', () => undefined);
  const out = new ChunkReader(child.stdout);
  const answer = async (): Promise<CommitFile | undefined> => {
    // Without --buffer, git answers each command as it comes.
    child.stdin.write(`info ${sha}^{commit}\ninfo ${sha}^{commit}:${file}\n`);
    // "<input> missing" (also for an object that does not peel to a commit), or git gone: no commit.
    const commit = objectHeader(await out.line());
    if (commit?.type !== 'commit') return undefined;
    // No such path, or a tree by that name: the commit without the file.
    const found = objectHeader(await out.line());
    if (found?.type !== 'blob') return { commit: commit.id };
    if (found.size > maxBytes) return { commit: commit.id, tooLarge: new FileTooLargeError(`${file} is ${found.size} bytes; at most ${maxBytes} are allowed`) };
    child.stdin.end(`contents ${found.id}\n`);
    if (objectHeader(await out.line())?.size !== found.size) return { commit: commit.id };
    const text = await out.bytes(found.size);
    return text === undefined ? { commit: commit.id } : { commit: commit.id, text: text.toString('utf8') };
  };
  try {
    return await Promise.race([answer(), spawnFailed]);
  } finally {
    child.stdin.end();
    out.stop();
  }
}

function objectHeader(line: string | undefined): { id: string; type: string; size: number } | undefined {
  const m = line === undefined ? null : /^([0-9a-f]{40,64}) ([a-z]+) (\d+)$/.exec(line);
  return m ? { id: m[1], type: m[2], size: Number(m[3]) } : undefined;
}

/**
 * Lines and counted bytes from a stream, as they arrive (a `cat-file --batch-command` answer).
 * Each read answers undefined once the stream ended without it.
 */
export class ChunkReader {
  private buffered: Buffer = Buffer.alloc(0);
  private ended = false;
  private wake?: () => void;

  constructor(private readonly stream: NodeJS.ReadableStream) {
    stream.on('data', this.onData);
    stream.on('end', this.onEnd);
    stream.on('error', this.onEnd);
    // A stream destroyed without an error ends with 'close' alone.
    stream.on('close', this.onEnd);
  }

  private readonly onData = (chunk: Buffer) => {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    this.wake?.();
  };

  private readonly onEnd = () => {
    this.ended = true;
    this.wake?.();
  };

  private async until(ready: () => boolean): Promise<boolean> {
    while (!ready()) {
      if (this.ended) return false;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
    return true;
  }

  /** The next line, without its newline. */
  async line(): Promise<string | undefined> {
    if (!(await this.until(() => this.buffered.includes(10)))) return undefined;
    const eol = this.buffered.indexOf(10);
    const line = this.buffered.subarray(0, eol).toString('utf8');
    this.buffered = this.buffered.subarray(eol + 1);
    return line;
  }

  /** The next `n` bytes. */
  async bytes(n: number): Promise<Buffer | undefined> {
    if (!(await this.until(() => this.buffered.length >= n))) return undefined;
    const taken = this.buffered.subarray(0, n);
    this.buffered = this.buffered.subarray(n);
    return taken;
  }

  /** Reads no more: what still comes is drained, not kept. */
  stop(): void {
    this.stream.removeListener('data', this.onData);
    this.stream.resume();
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
