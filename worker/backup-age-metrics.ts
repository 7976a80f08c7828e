import client from 'prom-client';
import type { Db } from '../core/db';
import { readManifest } from '../core/backup-manifest';
import type { BackupManifest } from '../core/backup-types';
import type { ObjectStore } from '../core/object-store';
import { newestCompleteBackupId } from '../core/stores/backups-store';
import { GLOBAL_DATABASE } from '../core/shard-map';

/**
 * Backup age per store (issue 14 item 2, ADR 0028): how old the newest complete backup's copy of
 * each part of the platform is. One backup completing says little on its own: a storage node that
 * is down or slow misses it, and its repositories are carried over from an earlier backup (ADR
 * 0014), so "the last backup finished a minute ago" can hide a node whose repositories were last
 * read a day ago. Labels: `kind` (`repositories`, `postgres`) and `store` (the storage node the
 * repositories were read on, `local` for the orchestration worker's own disk; for Postgres the
 * database's name in the shard map, `global` for DATABASE_URL): both bounded by configuration.
 * Every database of the shard map has a series once Postgres is backed up at all (ADR 0045): one
 * the newest backup holds no copy of ages as +Inf, so its alert names it (an absent series could
 * only be noticed as "no series at all").
 *
 * Read when scraped, from Postgres (the newest complete backup's id: one small query) and, when
 * that id changed, from its manifest in the object store: every orchestration worker reports the
 * same figures, one that restarted at once, and none needs to have run the backup itself.
 */

export interface BackupPartAge {
  kind: 'repositories' | 'postgres';
  store: string;
  /** When the newest copy of this part was taken (ms since the epoch); null: the backup holds none. */
  at: number | null;
}

/**
 * The parts of a manifest with when each was last copied: per node, the newest `capturedAt` of its
 * repositories; the global database to the backup's end (its WAL archive reaches it); each other
 * database of the shard map (`databases`, else the manifest's own) to the end of its base backup,
 * which may be an earlier backup's: what a restore gets at least (more where its server archives
 * its WAL too, ADR 0043, which the manifest does not record: so an upper bound of its age).
 */
export function backupPartAges(manifest: BackupManifest, databases?: readonly string[]): BackupPartAge[] {
  const nodes = new Map<string, number>();
  for (const entry of Object.values(manifest.repos)) {
    const store = entry.node ?? 'local';
    const at = Date.parse(entry.capturedAt);
    if (Number.isFinite(at)) nodes.set(store, Math.max(nodes.get(store) ?? 0, at));
  }
  const parts: BackupPartAge[] = [...nodes].map(([store, at]) => ({ kind: 'repositories', store, at }));
  const pg = manifest.postgres;
  if (pg) {
    parts.push({ kind: 'postgres', store: GLOBAL_DATABASE, at: Date.parse(manifest.finishedAt) });
    for (const name of databases ?? Object.keys(pg.databases ?? {})) {
      if (name === GLOBAL_DATABASE) continue;
      const entry = pg.databases?.[name];
      const at = entry ? Date.parse(entry.finishedAt) : NaN;
      parts.push({ kind: 'postgres', store: name, at: Number.isFinite(at) ? at : null });
    }
  }
  return parts;
}

/** Longest a scrape waits for Postgres and the object store: a scrape must answer while they do not. */
const READ_TIMEOUT_MS = 2000;

/**
 * Registers `dotgit_backup_age_seconds{kind,store}` (and `dotgit_backup_age_errors_total`). A
 * platform with no complete backup yet has no series; when Postgres or the store does not answer
 * in time, the ages keep growing from the last parts read.
 */
export function registerBackupAge(deps: {
  db: Db;
  store: ObjectStore;
  /** The shard map's databases (router.databases()' names): each gets a Postgres series. Default: the manifest's. */
  databases?: () => readonly string[];
  now?: () => number;
  registers?: client.Registry[];
}): void {
  const registers = deps.registers ?? [client.register];
  const now = deps.now ?? Date.now;
  const errors = new client.Counter({ name: 'dotgit_backup_age_errors_total', help: 'Scrapes that could not read the newest backup (Postgres or the object store did not answer in time)', registers });
  let known: { id: string; manifest: BackupManifest } | undefined;
  const refresh = async () => {
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), READ_TIMEOUT_MS).unref());
    const read = async () => {
      const id = await newestCompleteBackupId(deps.db);
      if (!id) return undefined;
      if (id === known?.id) return known;
      return { id, manifest: await readManifest(deps.store, id) };
    };
    try {
      known = await Promise.race([read(), timeout]);
    } catch {
      errors.inc();
    }
  };
  new client.Gauge({
    name: 'dotgit_backup_age_seconds',
    help: "Age of the newest complete backup's copy of each part, by kind (repositories, postgres) and store (storage node or local; database of the shard map); +Inf: no copy",
    labelNames: ['kind', 'store'],
    registers,
    async collect() {
      await refresh();
      this.reset(); // a node no longer in the newest backup has no age to report
      const parts = known ? backupPartAges(known.manifest, deps.databases?.()) : [];
      for (const p of parts) this.set({ kind: p.kind, store: p.store }, p.at === null ? Infinity : Math.max(0, (now() - p.at) / 1000));
    },
  });
}
