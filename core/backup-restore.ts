import path from 'node:path';
import type { ObjectStore } from './object-store';
import { listManifests, manifestAt } from './backup-manifest';
import { repoDir, restoreRepo } from './backup-repos';
import { flushWal, restorePostgres } from './backup-postgres';
import type { BackupManifest, PostgresBackupEntry } from './backup-types';

/** Thrown when there is nothing to restore from (no complete backup at or before the time asked). */
export class NoBackupError extends Error {
  override readonly name = 'NoBackupError';
}

/**
 * Restores the state at `at` into `dir` (`repos/<owner>/<name>.git`, `postgres/`) from the object
 * store alone: the repositories of the newest complete backup at or before `at` (all, or `repos`),
 * and Postgres from the newest base that ended by then plus WAL. Used by the restore workflow and
 * by the offline `npm run restore`.
 */
export async function restoreToDir(o: {
  store: ObjectStore;
  dir: string;
  at: Date;
  repos?: string[];
  /** Default true; false restores repositories only. */
  postgres?: boolean;
  /** The live database (its credentials are the restored cluster's too); asked to archive its current WAL first when it answers. */
  databaseUrl: string;
  /** The live cluster's directory, whose pg_wal may hold segments not archived yet. */
  pgDataDir?: string;
  beat?: (detail: string) => void;
}): Promise<{ manifest: BackupManifest; repos: number; postgres: boolean }> {
  const { store, dir, at } = o;
  const manifests = await listManifests(store);
  const manifest = manifestAt(manifests, at);
  if (!manifest) throw new NoBackupError(`no complete backup at or before ${at.toISOString()}`);
  let repos = 0;
  for (const [name, entry] of Object.entries(manifest.repos)) {
    if (o.repos && !o.repos.includes(name)) continue;
    await restoreRepo({ store, entry, targetDir: repoDir(path.join(dir, 'repos'), name) });
    repos++;
    o.beat?.(name);
  }
  let postgres = false;
  if (o.postgres !== false) {
    // The newest base that ended before `at` (a later manifest may carry a newer one than `manifest`).
    const base = [...manifests].reverse().map((m) => m.postgres).find((p): p is PostgresBackupEntry => !!p && Date.parse(p.finishedAt) <= at.getTime());
    if (base) {
      await flushWal(o.databaseUrl);
      const u = new URL(o.databaseUrl);
      await restorePostgres({
        store,
        entry: base,
        at,
        targetDir: path.join(dir, 'postgres'),
        credentials: { user: decodeURIComponent(u.username), password: decodeURIComponent(u.password) },
        extraWalDir: o.pgDataDir ? path.join(o.pgDataDir, 'pg_wal') : undefined,
      });
      postgres = true;
    }
  }
  return { manifest, repos, postgres };
}
