/**
 * Types and constants shared by the backup, restore and drill workflows, their activities and the
 * api. Pure: workflow code imports this file, so it must stay free of I/O.
 */

/** One repository's state in a backup: its refs, and the bundles (base first) that hold their objects. */
export interface RepoBackupEntry {
  /** Every ref and the object it pointed at when the backup read the repository. */
  refs: Record<string, string>;
  /** Target of the symbolic HEAD, e.g. `refs/heads/main`. */
  head?: string;
  /** The repository's own git config (hosting settings such as `http.receivepack`). */
  config?: string;
  /** Object-store keys of the bundles to apply in order: a base, then increments. */
  chain: string[];
  /** `base` (a full bundle), `increment` (objects new since the previous backup), `unchanged` (carried over). */
  kind: 'base' | 'increment' | 'unchanged';
  /** When the chain's base bundle was written. */
  baseAt: string;
  /** When the refs above were read. */
  capturedAt: string;
  /** The storage node whose worker read it (ADR 0014); absent in backups from before nodes, or taken on the orchestration worker's disk. */
  node?: string;
}

/** The Postgres part of a backup: the newest base backup (maybe of an earlier backup) plus the WAL archive. */
export interface PostgresBackupEntry {
  /** Id of the backup whose folder holds the base (this one or an earlier one). */
  baseBackupId: string;
  /** Keys of `pg_basebackup -Ft` output: base.tar.gz and pg_wal.tar.gz. */
  baseKey: string;
  walKey: string;
  /** First WAL segment the base needs (older segments are not needed by it). */
  startWal: string;
  /** When the base backup ended: restore targets before this cannot use it. */
  finishedAt: string;
  /**
   * The other databases of the shard map (ADR 0025), by name: one base backup each, taken with this
   * one (`backups/<id>/postgres@<name>/`). Each restores to the restore's instant when its server
   * archives its WAL into the store (`wal@<name>/`, ADR 0043), else to the end of its base backup.
   * Absent on one database.
   */
  databases?: Record<string, PostgresBackupEntry>;
}

/**
 * Written last, as `backups/<id>/manifest.json`: a backup without it is incomplete and never listed
 * as complete or restored from. Each manifest describes the whole state, so a restore reads one.
 */
export interface BackupManifest {
  version: 1;
  id: string;
  startedAt: string;
  finishedAt: string;
  /** `owner/name` → entry; repositories absent here did not exist at the backup. */
  repos: Record<string, RepoBackupEntry>;
  /** Absent when Postgres is not ours to back up (DATABASE_URL points elsewhere). */
  postgres?: PostgresBackupEntry;
  /**
   * Storage nodes holding repositories whose worker did not take this backup (node down, or no
   * storage worker polling it): their repositories' entries are the previous backup's, carried
   * over (their `capturedAt` says when); ones no earlier backup had are absent.
   */
  missedNodes?: string[];
}

export type BackupTrigger = 'schedule' | 'api';

export interface BackupInput {
  /** Given by the api (it answers with it); a scheduled run derives one from its start time. */
  id?: string;
  trigger: BackupTrigger;
  /** A new base for every repository and for Postgres, whatever the age of the current ones. */
  full?: boolean;
}

export interface BackupResult {
  id: string;
  repos: number;
  changed: number;
  postgresBase: boolean;
  /** The databases the Postgres part covers (`global` first, then the shard map's others); absent without one. */
  postgresDatabases?: string[];
  /** As in the manifest: nodes whose repositories were carried over, not read (absent when none). */
  missedNodes?: string[];
}

export interface RestoreInput {
  /** Given by the api; a drill derives one from its start time. */
  id?: string;
  /** The point in time (ISO 8601) to restore to. */
  at: string;
  /** `owner/name` of the repositories to restore; absent = all of them. */
  repos?: string[];
  /** Whether to restore the metadata (Postgres) too. Default true. */
  postgres?: boolean;
}

export interface RestoreResult {
  id: string;
  /** Where the restored copy is: `repos/` and `postgres/` inside. */
  dir: string;
  backupId: string;
  repos: number;
  postgres: boolean;
}

export interface DrillResult {
  ok: boolean;
  backupId?: string;
  problems: string[];
}

/** Object-store layout (keys are made here only). */
export const BACKUP_PREFIX = 'backups';
export const WAL_PREFIX = 'wal';
/**
 * Where a database's WAL is archived: `wal/` for the global one (DATABASE_URL), `wal@<name>/` for
 * each other database of the shard map whose server archives into the store (ADR 0043): WAL file
 * names repeat across clusters, so each has a folder of its own.
 */
export const walPrefixOf = (database?: string) => (database === undefined || database === 'global' ? WAL_PREFIX : `${WAL_PREFIX}@${database}`);
export const manifestKey = (id: string) => `${BACKUP_PREFIX}/${id}/manifest.json`;
/** The repository part's entries until the manifest takes them: one file, or one per storage node. */
export const repoPartKey = (id: string, node?: string) => `${BACKUP_PREFIX}/${id}/parts/${node ? `repos@${node}` : 'repos'}.json`;

/** Ids carry their start time, so retention can age out even a backup that never completed. */
export function backupIdFor(startedAt: Date, suffix: string): string {
  return `backup-${startedAt.toISOString().replace(/[-:.]/g, '')}-${suffix}`;
}

export function restoreIdFor(kind: 'restore' | 'drill', startedAt: Date, suffix: string): string {
  return `${kind}-${startedAt.toISOString().replace(/[-:.]/g, '')}-${suffix}`;
}
