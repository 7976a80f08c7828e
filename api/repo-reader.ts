import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { InputError, NotFoundError, PayloadTooLargeError, UnavailableError } from '../core/errors';

/**
 * The api's client of the git-server's read-only browse routes (git-server/repo-browse.ts, ADR
 * 0034). Any git-server answers; it sends the call on to the node holding the repository. The
 * git-server's 400/404/413/503 become the same business errors here, with its message.
 */
export interface RepoReader {
  refs(owner: string, name: string, kind: 'branches' | 'tags'): Promise<{ head: string | null; refs: { name: string; commit: string; committedAt: string | null }[]; truncated: boolean }>;
  log(owner: string, name: string, ref: string | undefined, limit: number): Promise<{ ref: string; commit: string; commits: GitCommit[] }>;
  tree(owner: string, name: string, ref: string | undefined, path: string): Promise<Record<string, unknown>>;
  blob(owner: string, name: string, ref: string | undefined, path: string): Promise<{ size: number; commit: string; stream: Readable }>;
}

export interface GitCommit {
  sha: string;
  parents: string[];
  author: { name: string; email: string; date: string };
  committer: { name: string; email: string; date: string };
  subject: string;
}

type Post = (path: string, body: unknown) => Promise<Response>;

async function refusal(res: Response): Promise<Error> {
  const message = ((await res.json().catch(() => ({}))) as { error?: { message?: string } }).error?.message ?? `git-server answered ${res.status}`;
  if (res.status === 400) return new InputError(message);
  if (res.status === 404) return new NotFoundError(message);
  if (res.status === 413) return new PayloadTooLargeError(message);
  if (res.status === 503) return new UnavailableError(message, 10);
  return new Error(`git-server answered ${res.status}: ${message}`);
}

export function gitServerRepoReader(post: Post): RepoReader {
  const json = async <T>(path: string, body: unknown): Promise<T> => {
    const res = await post(path, body);
    if (!res.ok) throw await refusal(res);
    return (await res.json()) as T;
  };
  return {
    refs: (owner, name, kind) => json('/internal/repos/refs', { owner, name, kind }),
    log: (owner, name, ref, limit) => json('/internal/repos/log', { owner, name, ref, limit }),
    tree: (owner, name, ref, path) => json('/internal/repos/tree', { owner, name, ref, path }),
    async blob(owner, name, ref, path) {
      const res = await post('/internal/repos/blob', { owner, name, ref, path });
      if (!res.ok || !res.body) throw await refusal(res);
      return { size: Number(res.headers.get('content-length') ?? 0), commit: res.headers.get('x-dotgit-commit') ?? '', stream: Readable.fromWeb(res.body as WebReadableStream) };
    },
  };
}
