import path from 'node:path';
import { createBackupActivities } from '../../activities/backup-activities';
import { writeManifest } from '../../core/backup-manifest';
import { backupIdFor, type BackupManifest, type RepoBackupEntry } from '../../core/backup-types';
import type { Db } from '../../core/db';
import { FsObjectStore } from '../../core/fs-object-store';
import { tempDir } from '../helpers/git';

// Retention on a real filesystem store: backups older than the window go, unless a kept backup
// still needs them (the base of an increment inside the window, or the newest backup before the
// window, which the window's first instant restores from); WAL older than the oldest kept base
// goes; nothing inside the window is touched.

const DAY = 86_400_000;
const now = new Date('2024-06-30T12:00:00Z');
const ago = (days: number) => new Date(now.getTime() - days * DAY);
const idAt = (days: number, s: string) => backupIdFor(ago(days), s);
const wal = (seg: number) => `00000001000000000000${seg.toString(16).toUpperCase().padStart(4, '0')}`;

function repoEntry(chain: string[], kind: RepoBackupEntry['kind']): RepoBackupEntry {
  return { refs: { 'refs/heads/main': 'a'.repeat(40) }, head: 'refs/heads/main', chain, kind, baseAt: now.toISOString(), capturedAt: now.toISOString() };
}

async function seed(store: FsObjectStore, id: string, days: number, chainIds: string[] | null, pgBase: { id: string; startWal: string } | null) {
  const own = `backups/${id}/repos/acme/web.bundle`;
  await store.put(own, Buffer.from('bundle'));
  if (pgBase?.id === id) await store.put(`backups/${id}/postgres/base.tar.gz`, Buffer.from('base'));
  if (chainIds === null) return; // incomplete: no manifest
  const m: BackupManifest = {
    version: 1,
    id,
    startedAt: ago(days).toISOString(),
    finishedAt: new Date(ago(days).getTime() + 60_000).toISOString(),
    repos: { 'acme/web': repoEntry(chainIds.map((c) => `backups/${c}/repos/acme/web.bundle`), chainIds.length === 1 ? 'base' : 'increment') },
    ...(pgBase ? { postgres: { baseBackupId: pgBase.id, baseKey: `backups/${pgBase.id}/postgres/base.tar.gz`, walKey: `backups/${pgBase.id}/postgres/pg_wal.tar.gz`, startWal: pgBase.startWal, finishedAt: ago(days).toISOString() } } : {}),
  };
  await writeManifest(store, m);
}

test('retention removes only what is older than the window and not needed by what is kept', async () => {
  const store = new FsObjectStore(path.join(tempDir(), 'objects'));
  const A = idAt(12, 'a'); // base, old
  const B = idAt(11, 'b'); // increment on A, old
  const C = idAt(9, 'c'); // base, old, but the newest before the window
  const D = idAt(2, 'd'); // increment on C, inside the window
  const E = idAt(10, 'e'); // abandoned, never completed
  const F = idAt(0.01, 'f'); // running right now, not complete yet
  await seed(store, A, 12, [A], { id: A, startWal: wal(2) });
  await seed(store, B, 11, [A, B], { id: A, startWal: wal(2) });
  await seed(store, C, 9, [C], { id: C, startWal: wal(8) });
  await seed(store, D, 2, [C, D], { id: C, startWal: wal(8) });
  await seed(store, E, 10, null, null);
  await seed(store, F, 0.01, null, null);
  for (const seg of [2, 3, 7, 8, 9, 12]) await store.put(`wal/${wal(seg)}`, Buffer.from('wal'));
  await store.put('wal/00000002.history', Buffer.from('history'));

  const deleted: unknown[] = [];
  const db = { query: async (_sql: string, params: unknown[]) => (deleted.push(...(params[0] as unknown[])), { rows: [], rowCount: 0 }) } as unknown as Db;
  const activities = createBackupActivities({ db, store, reposDir: tempDir(), restoresDir: tempDir(), databaseUrl: 'postgres://x@127.0.0.1:1/x', retentionDays: 7, fullEveryHours: 24, now: () => now });
  const result = await activities.applyRetention();

  expect(result.backups.sort()).toEqual([A, B, E].sort());
  expect(deleted.sort()).toEqual([A, B, E].sort());
  const folders = new Set((await store.list('backups')).map((k) => k.split('/')[1]));
  expect([...folders].sort()).toEqual([C, D, F].sort());
  expect(await store.exists(`backups/${C}/manifest.json`)).toBe(true);
  expect(await store.exists(`backups/${D}/manifest.json`)).toBe(true);
  expect(await store.exists(`backups/${F}/repos/acme/web.bundle`)).toBe(true);
  // WAL before the oldest kept base (C starts at segment 8) goes; timeline history files stay.
  expect(result.walFiles).toBe(3);
  expect(await store.list('wal')).toEqual([`wal/${wal(8)}`, `wal/${wal(9)}`, `wal/${wal(12)}`, 'wal/00000002.history']);

  // A second pass finds nothing more to remove: what is left is all needed.
  expect((await activities.applyRetention()).backups).toEqual([]);
});

test('a longer window keeps everything', async () => {
  const store = new FsObjectStore(path.join(tempDir(), 'objects'));
  const A = idAt(12, 'a');
  await seed(store, A, 12, [A], { id: A, startWal: wal(2) });
  await store.put(`wal/${wal(3)}`, Buffer.from('wal'));
  const db = { query: async () => ({ rows: [], rowCount: 0 }) } as unknown as Db;
  const activities = createBackupActivities({ db, store, reposDir: tempDir(), restoresDir: tempDir(), databaseUrl: 'postgres://x@127.0.0.1:1/x', retentionDays: 30, fullEveryHours: 24, now: () => now });
  expect(await activities.applyRetention()).toEqual({ backups: [], walFiles: 0 });
  expect(await store.exists(`backups/${A}/manifest.json`)).toBe(true);
});

test('the newest backup before the window stays even when no newer one needs it: the window starts restorable', async () => {
  const store = new FsObjectStore(path.join(tempDir(), 'objects'));
  const A = idAt(10, 'a');
  const C = idAt(8, 'c');
  const G = idAt(1, 'g'); // a new base inside the window, needing nothing older
  await seed(store, A, 10, [A], { id: A, startWal: wal(2) });
  await seed(store, C, 8, [C], { id: C, startWal: wal(8) });
  await seed(store, G, 1, [G], { id: G, startWal: wal(20) });
  for (const seg of [2, 8, 9, 20]) await store.put(`wal/${wal(seg)}`, Buffer.from('wal'));
  const db = { query: async () => ({ rows: [], rowCount: 0 }) } as unknown as Db;
  const activities = createBackupActivities({ db, store, reposDir: tempDir(), restoresDir: tempDir(), databaseUrl: 'postgres://x@127.0.0.1:1/x', retentionDays: 7, fullEveryHours: 24, now: () => now });
  expect(await activities.applyRetention()).toEqual({ backups: [A], walFiles: 1 });
  expect(await store.exists(`backups/${C}/manifest.json`)).toBe(true);
  expect(await store.list('wal')).toEqual([`wal/${wal(8)}`, `wal/${wal(9)}`, `wal/${wal(20)}`]);
});
