import { execFile } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import type { Db } from '../core/db';
import type { ObjectStore } from '../core/object-store';
import { cacheObjectKey, resolveCacheKey, restoreCandidates, type CacheSpec } from '../core/pipeline-cache';
import { matchesPattern } from '../core/pipeline-spec';
import { cacheExists, evictCachesOver, findCacheScope, findRestorableCache, insertCache } from '../core/stores/caches-store';

/**
 * A job's dependency cache on the sandbox host (issue 17 item 3, ADR 0030): restored into the
 * workspace before the job's first step, saved from it after the job's last step succeeded. The
 * archive is a tar.gz made and unpacked by GNU tar on the host, never inside the sandbox.
 */

const exec = promisify(execFile);

export interface JobCacheDeps {
  /** The database of a tenant's shard (ADR 0025). */
  dbOf: (tenantId: number) => Db;
  store: ObjectStore;
  /** A repository's caches beyond this many bytes in all: the least recently used are removed. */
  maxRepoBytes: number;
  /** Where archives are staged on the way to and from the store. */
  tmpDir: string;
}

export interface CacheScope {
  tenantId: number;
  repo: string;
  ref: string;
  runId: string;
  job: string;
}

/** GitHub's hashFiles: the SHA-256 of the matching regular files' SHA-256s, in path order; '' when none match. */
export async function hashFiles(workspace: string, patterns: string[]): Promise<string> {
  const files: string[] = [];
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
      const relPath = rel ? `${rel}/${entry.name}` : entry.name;
      // Links are never followed (a step could point one at a host file); only regular files count.
      if (entry.isDirectory()) await walk(path.join(dir, entry.name), relPath);
      else if (entry.isFile() && patterns.some((p) => matchesPattern(p, relPath))) files.push(relPath);
    }
  };
  await walk(workspace, '');
  if (files.length === 0) return '';
  const all = createHash('sha256');
  for (const file of files.sort()) {
    const one = createHash('sha256');
    await pipeline(createReadStream(path.join(workspace, file)), one);
    all.update(one.digest());
  }
  return all.digest('hex');
}

/** The cache key with `${{ hashFiles(…) }}` computed over the workspace as checked out. */
export async function cacheKeyOf(workspace: string, spec: CacheSpec): Promise<string> {
  const hashes = new Map<string, string>();
  for (const m of spec.key.matchAll(/hashFiles\(([^)]*)\)/g)) {
    const patterns = [...m[1].matchAll(/'([^']*)'/g)].map((p) => p[1]);
    hashes.set(patterns.join('\0'), await hashFiles(workspace, patterns));
  }
  return resolveCacheKey(spec.key, (patterns) => hashes.get(patterns.join('\0')) ?? '');
}

export interface Restored {
  key: string;
  /** The key itself was found (not a restore key): nothing to save after the job. */
  hit: boolean;
}

/** Restores the first cache the key or the restore keys find (own ref, then the default branch) into the workspace. */
export async function restoreCache(deps: JobCacheDeps, scope: CacheScope, spec: CacheSpec, workspace: string, log: (line: string) => void): Promise<Restored> {
  const key = await cacheKeyOf(workspace, spec);
  const repo = await findCacheScope(deps.dbOf(scope.tenantId), scope.tenantId, scope.repo);
  if (!repo) return { key, hit: false };
  const found = await findRestorableCache(deps.dbOf(scope.tenantId), scope.tenantId, repo.repoId, restoreCandidates(key, spec.restoreKeys, scope.ref, repo.defaultBranch));
  if (!found) {
    log(`dotgit: cache not found for key ${key}`);
    return { key, hit: false };
  }
  const started = Date.now();
  const file = path.join(deps.tmpDir, `restore-${randomUUID()}.tar.gz`);
  await fs.mkdir(deps.tmpDir, { recursive: true });
  try {
    await pipeline(await deps.store.get(found.object_key), createWriteStream(file));
    // GNU tar refuses members with ".." or a leading "/", and makes links of the archive only at the
    // end, so a link in the archive cannot redirect a later member out of the workspace.
    await exec('tar', ['-x', '-z', '--no-same-owner', '--no-overwrite-dir', '-C', workspace, '-f', file], { maxBuffer: 1 << 20 });
  } catch (err) {
    log(`dotgit: cache ${found.key} could not be restored (${(err as Error).message.split('\n')[0]}); the job goes on without it`);
    return { key, hit: false };
  } finally {
    await fs.rm(file, { force: true });
  }
  const exact = found.key === key && found.ref === scope.ref;
  log(`dotgit: cache restored from key ${found.key}${found.ref === scope.ref ? '' : ` (${found.ref})`}, ${found.size} bytes, in ${((Date.now() - started) / 1000).toFixed(2)}s`);
  return { key, hit: exact };
}

/** The cache paths that exist in the workspace; a path through a symbolic link is left out (tar would follow it). */
async function existingPaths(workspace: string, paths: string[], log: (line: string) => void): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    let ok = true;
    let cur = workspace;
    for (const part of p.split('/')) {
      cur = path.join(cur, part);
      const st = await fs.lstat(cur).catch(() => undefined);
      if (!st) {
        log(`dotgit: cache path ${p} not found, not cached`);
        ok = false;
        break;
      }
      if (st.isSymbolicLink() && cur !== path.join(workspace, p)) {
        log(`dotgit: cache path ${p} passes through a symbolic link, not cached`);
        ok = false;
        break;
      }
    }
    if (ok) out.push(p);
  }
  return out;
}

/**
 * Saves the cache paths under `key` for the run's ref, unless that key is saved already, then
 * evicts the repository's least recently used caches beyond its cap. Never fails the job: a cache
 * that cannot be saved is a line in the log.
 */
export async function saveCache(deps: JobCacheDeps, scope: CacheScope, spec: CacheSpec, key: string, workspace: string, log: (line: string) => void): Promise<void> {
  try {
    const repo = await findCacheScope(deps.dbOf(scope.tenantId), scope.tenantId, scope.repo);
    if (!repo) return;
    if (await cacheExists(deps.dbOf(scope.tenantId), scope.tenantId, repo.repoId, scope.ref, key)) {
      log(`dotgit: cache ${key} is saved already for ${scope.ref}; not saved again`);
      return;
    }
    const paths = await existingPaths(workspace, spec.paths, log);
    if (paths.length === 0) {
      log('dotgit: no cache path exists; nothing cached');
      return;
    }
    const started = Date.now();
    const file = path.join(deps.tmpDir, `save-${randomUUID()}.tar.gz`);
    await fs.mkdir(deps.tmpDir, { recursive: true });
    try {
      await exec('tar', ['-c', '-z', '-C', workspace, '-f', file, '--', ...paths], { maxBuffer: 1 << 20 });
      const objectKey = cacheObjectKey(scope.tenantId, repo.repoId, randomUUID());
      const { size } = await deps.store.put(objectKey, createReadStream(file));
      if (!(await insertCache(deps.dbOf(scope.tenantId), { tenantId: scope.tenantId, repoId: repo.repoId, ref: scope.ref, key, objectKey, size, runId: scope.runId, job: scope.job }))) {
        await deps.store.delete(objectKey);
        log(`dotgit: cache ${key} was saved by another run meanwhile; not saved again`);
        return;
      }
      log(`dotgit: cache saved under key ${key}, ${size} bytes, in ${((Date.now() - started) / 1000).toFixed(2)}s`);
      for (const gone of await evictCachesOver(deps.dbOf(scope.tenantId), scope.tenantId, repo.repoId, deps.maxRepoBytes)) {
        await deps.store.delete(gone.object_key).catch(() => undefined);
        log(`dotgit: cache ${gone.key} evicted (the repository's caches passed ${deps.maxRepoBytes} bytes; least recently used first)`);
      }
    } finally {
      await fs.rm(file, { force: true });
    }
  } catch (err) {
    log(`dotgit: cache ${key} could not be saved: ${(err as Error).message.split('\n')[0]}`);
  }
}
