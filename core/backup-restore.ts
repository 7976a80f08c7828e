import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { ObjectStore } from './object-store';
import { listManifests, manifestAt } from './backup-manifest';
import { repoDir, restoreRepo } from './backup-repos';
import { flushWal, restorePostgres } from './backup-postgres';
import { databaseCredentials, primaryUrl } from './db-leader';
import { walPrefixOf, type BackupManifest, type PostgresBackupEntry } from './backup-types';

/** Thrown when there is nothing to restore from (no complete backup at or before the time asked). */
export class NoBackupError extends Error {
  override readonly name = 'NoBackupError';
}

/**
 * Restores the state at `at` into `dir` (`repos/<owner>/<name>.git`, `postgres/`) from the object
 * store alone: the repositories of the newest complete backup at or before `at` (all, or `repos`),
 * and Postgres from the newest base that ended by then plus WAL. Used by the restore workflow and
 * by the offline `npm run restore`. Reads the object store only, never a node's repositories, so
 * the restore workflow's copy is made on the orchestration worker whichever nodes held them.
 */
export async function restoreToDir(o: {
  store: ObjectStore;
  dir: string;
  at: Date;
  repos?: string[];
  /**
   * Only the repositories this storage node held when backed up (and those the backup recorded no
   * node for: taken before nodes): a fleet's hosts each restore their own node's share (ADR 0014).
   */
  node?: string;
  /** Default true; false restores repositories only. */
  postgres?: boolean;
  /** The live database (its credentials are the restored cluster's too); asked to archive its current WAL first when it answers. */
  databaseUrl: string;
  /** The live cluster's directory, whose pg_wal may hold segments not archived yet. */
  pgDataDir?: string;
  /** The shard map's other databases by name (ADR 0043): each one archiving into the store is asked to archive its current WAL first. */
  databaseUrls?: Record<string, string>;
  beat?: (detail: string) => void;
}): Promise<{ manifest: BackupManifest; repos: number; postgres: boolean }> {
  const { store, dir, at } = o;
  const manifests = await listManifests(store);
  const manifest = manifestAt(manifests, at);
  if (!manifest) throw new NoBackupError(`no complete backup at or before ${at.toISOString()}`);
  let repos = 0;
  for (const [name, entry] of Object.entries(manifest.repos)) {
    if (o.repos && !o.repos.includes(name)) continue;
    if (o.node !== undefined && entry.node !== undefined && entry.node !== o.node) continue;
    await restoreRepo({ store, entry, targetDir: repoDir(path.join(dir, 'repos'), name) });
    repos++;
    o.beat?.(name);
  }
  let postgres = false;
  if (o.postgres !== false) {
    // The newest base that ended before `at` (a later manifest may carry a newer one than `manifest`).
    const base = [...manifests].reverse().map((m) => m.postgres).find((p): p is PostgresBackupEntry => !!p && Date.parse(p.finishedAt) <= at.getTime());
    if (base) {
      // The primary's WAL (a multi-host URL names every member; a standby cannot switch WAL); none found: best effort, as flushWal is.
      await flushWal(await primaryUrl(o.databaseUrl).catch(() => o.databaseUrl));
      const { user, password } = databaseCredentials(o.databaseUrl);
      await restorePostgres({
        store,
        entry: base,
        at,
        targetDir: path.join(dir, 'postgres'),
        credentials: { user, password },
        extraWalDir: o.pgDataDir ? path.join(o.pgDataDir, 'pg_wal') : undefined,
      });
      // The shard map's other databases (ADR 0025), each into `postgres@<name>`, by the name the
      // backup recorded: which cluster holds which shards is the live placement's business. To
      // `at` when its server archives its WAL into the store (`wal@<name>/`, ADR 0043), else to the
      // end of its base backup.
      for (const [name, entry] of Object.entries(base.databases ?? {})) {
        const walPrefix = walPrefixOf(name);
        const archived = await walArchivedSince(store, walPrefix, entry, o.databaseUrls?.[name]);
        await restorePostgres({ store, entry, at, targetDir: path.join(dir, `postgres@${name}`), credentials: { user, password }, archived, walPrefix });
        o.beat?.(`postgres@${name}`);
      }
      postgres = true;
    }
  }
  return { manifest, repos, postgres };
}

/**
 * Whether a shard map's other database has its WAL archived under `walPrefix` from its base
 * backup's first segment on (ADR 0043): its server's `archive_command` is `infra/wal-archive.ts …
 * <name>`. When it does and `databaseUrl` answers, its current segment is archived first (as for
 * the global database), and a failed flush means "not archived": recovery to a time past the
 * archive's end would stop short of its target and fail.
 */
async function walArchivedSince(store: ObjectStore, walPrefix: string, entry: PostgresBackupEntry, databaseUrl?: string): Promise<boolean> {
  if ((await store.list(walPrefix)).length === 0) return false;
  if (databaseUrl && !(await flushWal(await primaryUrl(databaseUrl).catch(() => databaseUrl), 30_000))) return false;
  return store.exists(`${walPrefix}/${entry.startWal}`);
}

/** Names of the copies restores and drills make under the restores directory (restoreIdFor, `npm run restore`'s `restore-offline-…`). */
const RESTORE_COPY_NAME = /^(restore|drill)-[0-9A-Za-z-]+$/;

/** True when `<copy>/postgres` is a cluster a Postgres server runs on (someone inspects the copy). */
async function postgresRunsOn(copy: string): Promise<boolean> {
  const pid = Number((await fs.readFile(path.join(copy, 'postgres', 'postmaster.pid'), 'utf8').catch(() => '')).split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the restored copies under `restoresDir` (`<id>/repos`, `<id>/postgres`: what the restore
 * workflow, a drill kept for inspection, or `npm run restore` left) that ended more than
 * `olderThanMs` ago: by `finishedAt` when the restore is recorded, else by the folder's
 * modification time. Never a copy still being written (`running`) or one a Postgres server runs on.
 */
export async function pruneRestoreCopies(o: {
  restoresDir: string;
  olderThanMs: number;
  finishedAt: ReadonlyMap<string, Date>;
  running: ReadonlySet<string>;
  now?: number;
}): Promise<{ removed: string[]; kept: number }> {
  const now = o.now ?? Date.now();
  const removed: string[] = [];
  let kept = 0;
  const entries = await fs.readdir(o.restoresDir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  for (const entry of entries) {
    if (!entry.isDirectory() || !RESTORE_COPY_NAME.test(entry.name)) continue;
    const copy = path.join(o.restoresDir, entry.name);
    // A drill that passed removes its own copy: one gone meanwhile is simply skipped.
    const endedAt = o.finishedAt.get(entry.name)?.getTime() ?? (await fs.stat(copy).catch(() => undefined))?.mtimeMs;
    if (endedAt === undefined) continue;
    if (o.running.has(entry.name) || now - endedAt < o.olderThanMs || (await postgresRunsOn(copy))) {
      kept++;
      continue;
    }
    await fs.rm(copy, { recursive: true, force: true });
    removed.push(entry.name);
  }
  return { removed, kept };
}
