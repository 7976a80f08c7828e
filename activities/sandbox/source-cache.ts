import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { answerMessage, fetchFromGitServer } from '../../core/git-upstreams';
import { mintJobCredential, type JobSource } from '../../core/job-credential';

/**
 * Workspace sources over the network (ADR 0014): a sandbox host has no repository disk, so a job's
 * commit comes as a tar from a git-server (`GET /internal/repos/archive`, git-server/source-archive.ts)
 * with a job credential. Each host keeps the archives it fetched under `cache/sources/<hash of
 * repository>/<commit>.tar`, bounded in size (the least recently used go first), so the jobs of one
 * commit — a run's many jobs, a re-run — fetch it once.
 */

export interface CachedArchive {
  file: string;
  bytes: number;
  /** Last use, ms (the file's mtime, set on every use, so it outlives the process). */
  usedAt: number;
}

/** Which archives go so the rest fit in `maxBytes`: least recently used first, never one in use. */
export function archivesToEvict(archives: readonly CachedArchive[], maxBytes: number, inUse: ReadonlySet<string> = new Set()): string[] {
  let total = archives.reduce((sum, a) => sum + a.bytes, 0);
  const out: string[] = [];
  for (const a of [...archives].sort((x, y) => x.usedAt - y.usedAt || x.file.localeCompare(y.file))) {
    if (total <= maxBytes) break;
    if (inUse.has(a.file)) continue;
    out.push(a.file);
    total -= a.bytes;
  }
  return out;
}

/** Fetches `source` from a git-server into `dest` (whole or not at all: a cut stream fails). */
export type ArchiveFetcher = (source: JobSource, dest: string) => Promise<void>;

/** The git-server fetch: a fresh job credential for this one repository and commit, any upstream. */
export function gitServerArchiveFetcher(o: { upstreams: readonly string[]; internalSecret: string; timeoutMs?: number }): ArchiveFetcher {
  return async (source, dest) => {
    const [owner = '', name = ''] = source.repo.split('/');
    const credential = await mintJobCredential(o.internalSecret, source);
    const query = new URLSearchParams({ owner, name, commit: source.commit });
    const res = await fetchFromGitServer(o.upstreams, `/internal/repos/archive?${query}`, {
      headers: { authorization: `Bearer ${credential}` },
      signal: AbortSignal.timeout(o.timeoutMs ?? 10 * 60_000),
    });
    if (!res.ok || !res.body) throw new Error(`git-server answered ${res.status} for ${source.repo} at ${source.commit}: ${await answerMessage(res)}`);
    await pipeline(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>), createWriteStream(dest, { flags: 'wx' }));
  };
}

/** A temporary file older than this was left by a killed worker (a live fetch renames its file sooner). */
const STALE_TEMP_MS = 60 * 60_000;

export class SourceCache {
  private readonly fetching = new Map<string, Promise<void>>();
  private readonly inUse = new Map<string, number>();

  constructor(private readonly o: { dir: string; maxBytes: number; fetch: ArchiveFetcher }) {}

  fileOf(source: JobSource): string {
    if (!/^[0-9a-f]{40,64}$/.test(source.commit)) throw new Error(`not a commit id: ${source.commit}`);
    return path.join(this.o.dir, createHash('sha256').update(source.repo).digest('hex').slice(0, 32), `${source.commit}.tar`);
  }

  /** Runs `fn` with the archive of `source`, fetched unless cached; it is not evicted while `fn` runs. */
  async use<T>(source: JobSource, fn: (tarFile: string) => Promise<T>): Promise<T> {
    const file = this.fileOf(source);
    this.inUse.set(file, (this.inUse.get(file) ?? 0) + 1);
    try {
      const now = new Date();
      const cached = await fs.utimes(file, now, now).then(() => true, () => false);
      if (!cached) await this.fetchOnce(source, file);
      return await fn(file);
    } finally {
      const n = (this.inUse.get(file) ?? 1) - 1;
      if (n > 0) this.inUse.set(file, n);
      else this.inUse.delete(file);
    }
  }

  /** Concurrent jobs of one commit share one fetch. */
  private fetchOnce(source: JobSource, file: string): Promise<void> {
    let pending = this.fetching.get(file);
    if (!pending) {
      pending = this.fetchInto(source, file).finally(() => this.fetching.delete(file));
      this.fetching.set(file, pending);
    }
    return pending;
  }

  private async fetchInto(source: JobSource, file: string): Promise<void> {
    await fs.mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await this.o.fetch(source, tmp);
      await fs.rename(tmp, file);
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
    await this.evict().catch((err) => console.warn(`dotgit: source cache eviction failed: ${(err as Error).message}`));
  }

  /** Removes the least recently used archives beyond the size bound (and temporary files killed workers left). */
  async evict(): Promise<string[]> {
    const archives: CachedArchive[] = [];
    for (const repoDir of await fs.readdir(this.o.dir).catch(() => [] as string[])) {
      for (const entry of await fs.readdir(path.join(this.o.dir, repoDir)).catch(() => [] as string[])) {
        const file = path.join(this.o.dir, repoDir, entry);
        const st = await fs.stat(file).catch(() => undefined);
        if (!st?.isFile()) continue;
        if (entry.endsWith('.tar')) archives.push({ file, bytes: st.size, usedAt: st.mtimeMs });
        else if (entry.endsWith('.tmp') && Date.now() - st.mtimeMs > STALE_TEMP_MS) await fs.rm(file, { force: true });
      }
    }
    const evicted = archivesToEvict(archives, this.o.maxBytes, new Set(this.inUse.keys()));
    // A job that took one of them up since the listing keeps it.
    for (const file of evicted) if (!this.inUse.has(file)) await fs.rm(file, { force: true });
    return evicted;
  }
}
