import type { ObjectStore } from './object-store';
import { BACKUP_PREFIX, manifestKey, WAL_PREFIX, type BackupManifest, type RepoBackupEntry } from './backup-types';

/** Every complete backup (one with a manifest), oldest first. */
export async function listManifests(store: ObjectStore): Promise<BackupManifest[]> {
  const keys = (await store.list(BACKUP_PREFIX)).filter((k) => k.endsWith('/manifest.json'));
  const manifests = await Promise.all(keys.map(async (k) => JSON.parse((await store.getBuffer(k)).toString('utf8')) as BackupManifest));
  return manifests.sort((a, b) => a.finishedAt.localeCompare(b.finishedAt));
}

/** The complete backup whose state is the newest at or before `at`, or undefined. */
export function manifestAt(manifests: BackupManifest[], at: Date): BackupManifest | undefined {
  let found: BackupManifest | undefined;
  for (const m of manifests) if (Date.parse(m.finishedAt) <= at.getTime()) found = m;
  return found;
}

/** The manifest of one complete backup (throws when the store has none). */
export async function readManifest(store: ObjectStore, id: string): Promise<BackupManifest> {
  return JSON.parse((await store.getBuffer(manifestKey(id))).toString('utf8')) as BackupManifest;
}

/**
 * The repositories of a backup taken per storage node (ADR 0014): every node's part, in node id
 * order (a repository two nodes both took as their own, both having found it unplaced on their
 * disk, comes from the first); then, for the repositories placed on a node that missed the backup
 * (`missed`: `owner/name` → node), the previous backup's entry carried over as `unchanged` — its
 * `capturedAt` still says when it was read. One that no earlier backup had stays absent.
 */
export function combineNodeParts(args: {
  parts: Array<{ node: string; entries: Record<string, RepoBackupEntry> }>;
  missed: ReadonlyMap<string, string>;
  previous?: BackupManifest;
}): Record<string, RepoBackupEntry> {
  const repos: Record<string, RepoBackupEntry> = {};
  for (const part of [...args.parts].sort((a, b) => a.node.localeCompare(b.node))) {
    for (const [name, entry] of Object.entries(part.entries)) repos[name] ??= entry;
  }
  for (const [name, node] of args.missed) {
    const prev = args.previous?.repos[name];
    if (prev && !repos[name]) repos[name] = { ...prev, kind: 'unchanged', node: prev.node ?? node };
  }
  return Object.fromEntries(Object.entries(repos).sort(([a], [b]) => a.localeCompare(b)));
}

export async function writeManifest(store: ObjectStore, manifest: BackupManifest): Promise<void> {
  await store.put(manifestKey(manifest.id), Buffer.from(JSON.stringify(manifest, null, 1)));
}

/** Ids of the backups (folders under `backups/`) whose parts a manifest needs. */
export function referencedBackups(m: BackupManifest): Set<string> {
  const ids = new Set<string>([m.id]);
  for (const e of Object.values(m.repos)) for (const key of e.chain) ids.add(key.split('/')[1]);
  if (m.postgres) ids.add(m.postgres.baseBackupId);
  return ids;
}

export interface RetentionPlan {
  /** Backup folders to remove whole. */
  backups: string[];
  /** WAL files to remove. */
  wal: string[];
  /** Per other database of the shard map (ADR 0043): its archived WAL files (`wal@<name>/`) to remove. */
  databaseWal: Record<string, string[]>;
}

/**
 * What retention may remove: every backup older than the cutoff unless a kept backup needs its
 * parts (an increment's base), and WAL older than the oldest kept Postgres base. Kept are all
 * backups inside the window plus the newest one before it, so the window's first instant stays
 * restorable. Incomplete folders older than the cutoff (an abandoned run) go too.
 */
export function planRetention(args: { manifests: BackupManifest[]; folders: string[]; walFiles: string[]; cutoff: Date; databaseWalFiles?: Record<string, string[]> }): RetentionPlan {
  const { manifests, cutoff } = args;
  const inside = manifests.filter((m) => Date.parse(m.finishedAt) >= cutoff.getTime());
  const before = manifests.filter((m) => Date.parse(m.finishedAt) < cutoff.getTime());
  const kept = before.length ? [before[before.length - 1], ...inside] : inside;
  const needed = new Set<string>();
  for (const m of kept) for (const id of referencedBackups(m)) needed.add(id);
  const startedOf = new Map(manifests.map((m) => [m.id, m.startedAt]));
  const backups = args.folders.filter((id) => {
    if (needed.has(id)) return false;
    const started = startedOf.get(id) ?? startedFromId(id);
    return started !== undefined && Date.parse(started) < cutoff.getTime();
  });
  const wal = walBefore(kept.flatMap((m) => (m.postgres ? [m.postgres.startWal] : [])), args.walFiles);
  // Each other database's archive against its own kept bases (its WAL names are its cluster's).
  const databaseWal = Object.fromEntries(
    Object.entries(args.databaseWalFiles ?? {}).map(([name, files]) => [name, walBefore(kept.flatMap((m) => m.postgres?.databases?.[name]?.startWal ?? []), files)]),
  );
  return { backups, wal, databaseWal };
}

/** Of `walFiles`, the segments older than the oldest of `starts`; without any start, none (a future base's needs are unknown: keep it all). */
function walBefore(starts: string[], walFiles: string[]): string[] {
  const oldestStart = starts.length ? starts.map(segmentOf).sort()[0] : undefined;
  return oldestStart === undefined ? [] : walFiles.filter((f) => /^[0-9A-F]{24}$/.test(f) && segmentOf(f) < oldestStart);
}

/** The log+segment part of a WAL file name (timeline excluded), comparable as a string. */
function segmentOf(walFile: string): string {
  return walFile.slice(8, 24);
}

/** Backup ids carry their start time (`backup-20240101T101500123Z-…`), so even incomplete ones can age out. */
export function startedFromId(id: string): string | undefined {
  const m = /^backup-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z/.exec(id);
  return m ? `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${m[7]}Z` : undefined;
}

/** Backup folder ids and WAL file names currently in the store. */
export async function storeInventory(store: ObjectStore): Promise<{ folders: string[]; walFiles: string[] }> {
  const folders = new Set((await store.list(BACKUP_PREFIX)).map((k) => k.split('/')[1]));
  const walFiles = (await store.list(WAL_PREFIX)).map((k) => k.slice(WAL_PREFIX.length + 1));
  return { folders: [...folders], walFiles };
}
