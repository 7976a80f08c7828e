import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import client from 'prom-client';
import { writeManifest } from '../../core/backup-manifest';
import type { BackupManifest, RepoBackupEntry } from '../../core/backup-types';
import type { Db } from '../../core/db';
import { FsObjectStore } from '../../core/fs-object-store';
import { backupPartAges, registerBackupAge } from '../../worker/backup-age-metrics';

// Backup age per store (ADR 0028): a node that missed the newest backup keeps the age of its
// repositories' last read (their entries are carried over with their capturedAt), not the backup's.

const entry = (capturedAt: string, node?: string): RepoBackupEntry => ({ refs: {}, chain: [], kind: 'unchanged', baseAt: capturedAt, capturedAt, ...(node ? { node } : {}) });

test('each storage node is aged by its newest read repository; Postgres by the backup; the local disk as local', () => {
  const m: BackupManifest = {
    version: 1,
    id: 'b3',
    startedAt: '2026-01-03T00:00:00.000Z',
    finishedAt: '2026-01-03T00:01:00.000Z',
    repos: {
      'a/one': entry('2026-01-03T00:00:10.000Z', 'n1'),
      'a/two': entry('2026-01-03T00:00:20.000Z', 'n1'),
      // n2 missed this backup: its repository is the previous backup's, read a day earlier.
      'b/three': entry('2026-01-02T00:00:05.000Z', 'n2'),
      'c/old': entry('2026-01-03T00:00:30.000Z'),
    },
    postgres: { baseBackupId: 'b1', baseKey: 'k', walKey: 'w', startWal: '0', finishedAt: '2026-01-01T00:00:00.000Z' },
    missedNodes: ['n2'],
  };
  expect(backupPartAges(m)).toEqual([
    { kind: 'repositories', store: 'n1', at: Date.parse('2026-01-03T00:00:20.000Z') },
    { kind: 'repositories', store: 'n2', at: Date.parse('2026-01-02T00:00:05.000Z') },
    { kind: 'repositories', store: 'local', at: Date.parse('2026-01-03T00:00:30.000Z') },
    // The base may be older; the WAL archive brings Postgres to the backup's end.
    { kind: 'postgres', store: 'global', at: Date.parse('2026-01-03T00:01:00.000Z') },
  ]);
});

test("each database of the shard map is aged by its own base backup; one the backup has no copy of has none (ADR 0045)", () => {
  const base = (finishedAt: string) => ({ baseBackupId: 'b1', baseKey: 'k', walKey: 'w', startWal: '0', finishedAt });
  const m: BackupManifest = {
    version: 1,
    id: 'b3',
    startedAt: '2026-01-03T00:00:00.000Z',
    finishedAt: '2026-01-03T00:01:00.000Z',
    repos: {},
    // db2's base is an earlier backup's (bases are taken every DOTGIT_BACKUP_FULL_EVERY_HOURS); db3 joined the map since.
    postgres: { ...base('2026-01-01T00:00:00.000Z'), databases: { db2: base('2026-01-01T00:02:00.000Z') } },
  };
  expect(backupPartAges(m, ['global', 'db2', 'db3'])).toEqual([
    { kind: 'postgres', store: 'global', at: Date.parse('2026-01-03T00:01:00.000Z') },
    { kind: 'postgres', store: 'db2', at: Date.parse('2026-01-01T00:02:00.000Z') },
    { kind: 'postgres', store: 'db3', at: null },
  ]);
  // Without the shard map's names: the databases the manifest holds.
  expect(backupPartAges(m).map((p) => p.store)).toEqual(['global', 'db2']);
});

test('a backup without Postgres (not ours to back up) and without repositories has no parts', () => {
  expect(backupPartAges({ version: 1, id: 'x', startedAt: '2026-01-01T00:00:00Z', finishedAt: '2026-01-01T00:00:01Z', repos: {} })).toEqual([]);
});

test('the gauge: a database of the shard map without a copy is +Inf, the others their age (what the alerts read)', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'backup-age-'));
  try {
    const store = new FsObjectStore(dir);
    const base = (finishedAt: string) => ({ baseBackupId: 'b1', baseKey: 'k', walKey: 'w', startWal: '0', finishedAt });
    await writeManifest(store, { version: 1, id: 'b3', startedAt: '2026-01-03T00:00:00.000Z', finishedAt: '2026-01-03T00:01:00.000Z', repos: {}, postgres: { ...base('2026-01-03T00:00:30.000Z'), databases: { db2: base('2026-01-03T00:00:40.000Z') } } });
    // The newest complete backup's id, as Postgres would answer it.
    const db = { query: async () => ({ rows: [{ id: 'b3' }] }) } as unknown as Db;
    const registry = new client.Registry();
    registerBackupAge({ db, store, databases: () => ['global', 'db2', 'db3'], now: () => Date.parse('2026-01-03T00:11:00.000Z'), registers: [registry] });
    const text = await registry.metrics();
    expect(text).toContain('dotgit_backup_age_seconds{kind="postgres",store="global"} 600');
    expect(text).toContain('dotgit_backup_age_seconds{kind="postgres",store="db2"} 620');
    expect(text).toContain('dotgit_backup_age_seconds{kind="postgres",store="db3"} +Inf');
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
