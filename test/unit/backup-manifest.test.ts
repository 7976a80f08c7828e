import { combineNodeParts, manifestAt, planRetention, referencedBackups, startedFromId } from '../../core/backup-manifest';
import { walFileName } from '../../core/backup-postgres';
import { backupIdFor, walPrefixOf, type BackupManifest, type RepoBackupEntry } from '../../core/backup-types';

// Pure parts of backups: ids that carry their start time, picking the backup for a point in
// time, what a manifest depends on, WAL file names from LSNs.

const m = (id: string, finishedAt: string, chains: string[][] = [], pgBase?: string): BackupManifest => ({
  version: 1,
  id,
  startedAt: finishedAt,
  finishedAt,
  repos: Object.fromEntries(chains.map((c, i) => [`acme/r${i}`, { refs: {}, chain: c.map((b) => `backups/${b}/repos/acme/r${i}.bundle`), kind: 'base', baseAt: finishedAt, capturedAt: finishedAt }])),
  ...(pgBase ? { postgres: { baseBackupId: pgBase, baseKey: '', walKey: '', startWal: '000000010000000000000002', finishedAt } } : {}),
});

test('backup ids carry their start time, read back to the millisecond', () => {
  const t = new Date('2024-03-05T07:08:09.123Z');
  const id = backupIdFor(t, 'ab12cd34');
  expect(id).toBe('backup-20240305T070809123Z-ab12cd34');
  expect(startedFromId(id)).toBe(t.toISOString());
  expect(startedFromId('restore-20240305T070809123Z-x')).toBeUndefined();
});

test('the backup for a point in time is the newest finished at or before it', () => {
  const list = [m('a', '2024-01-01T00:00:00.000Z'), m('b', '2024-01-01T00:15:00.000Z'), m('c', '2024-01-01T00:30:00.000Z')];
  expect(manifestAt(list, new Date('2023-12-31T23:59:59Z'))).toBeUndefined();
  expect(manifestAt(list, new Date('2024-01-01T00:00:00Z'))?.id).toBe('a');
  expect(manifestAt(list, new Date('2024-01-01T00:29:59Z'))?.id).toBe('b');
  expect(manifestAt(list, new Date('2030-01-01T00:00:00Z'))?.id).toBe('c');
});

test('a manifest depends on itself, the backups of its bundle chains and of its Postgres base', () => {
  expect([...referencedBackups(m('d', '2024-01-01T00:00:00.000Z', [['a', 'c', 'd'], ['b']], 'a'))].sort()).toEqual(['a', 'b', 'c', 'd']);
});

test('WAL file names from LSNs (16 MiB segments)', () => {
  expect(walFileName(1, '0/2000028')).toBe('000000010000000000000002');
  expect(walFileName(1, '0/FF000000')).toBe('0000000100000000000000FF');
  expect(walFileName(3, '1A/3000000')).toBe('000000030000001A00000003');
});

test("a backup per storage node: the nodes' parts combined, a missed node's repositories carried over from the previous backup", () => {
  const e = (node: string, capturedAt: string): RepoBackupEntry => ({ refs: { 'refs/heads/main': node.padEnd(40, '0') }, chain: [`backups/b/${node}.bundle`], kind: 'base', baseAt: capturedAt, capturedAt, node });
  const previous = m('prev', '2024-01-01T00:00:00.000Z');
  previous.repos = { 'acme/old': e('n3', '2024-01-01T00:00:00.000Z'), 'acme/gone': { ...e('n3', '2024-01-01T00:00:00.000Z'), node: undefined } };
  const repos = combineNodeParts({
    // A repository both n1 and n2 took as their own (found unplaced on both disks): n1's, whatever the order.
    parts: [
      { node: 'n2', entries: { 'acme/b': e('n2', 'now'), 'acme/both': e('n2', 'now') } },
      { node: 'n1', entries: { 'acme/a': e('n1', 'now'), 'acme/both': e('n1', 'now') } },
    ],
    // n3 missed the backup: old had an entry before, new did not; gone was unplaced in the previous backup.
    missed: new Map([['acme/old', 'n3'], ['acme/new', 'n3'], ['acme/gone', 'n3']]),
    previous,
  });
  expect(Object.keys(repos)).toEqual(['acme/a', 'acme/b', 'acme/both', 'acme/gone', 'acme/old']);
  expect(repos['acme/both'].node).toBe('n1');
  expect(repos['acme/old']).toEqual({ ...previous.repos['acme/old'], kind: 'unchanged' });
  expect(repos['acme/gone']).toMatchObject({ kind: 'unchanged', node: 'n3', capturedAt: '2024-01-01T00:00:00.000Z' });
  expect(combineNodeParts({ parts: [], missed: new Map([['acme/old', 'n3']]) })).toEqual({});
});

test("retention of a shard map's other databases' WAL (ADR 0043): each archive against its own kept bases, in its own folder", () => {
  const seg = (n: number) => `00000001000000000000000${n}`;
  const withDb = (id: string, finishedAt: string, startWal: string, db2Start?: string): BackupManifest => {
    const base = m(id, finishedAt, [], id);
    return { ...base, postgres: { ...base.postgres!, startWal, ...(db2Start ? { databases: { db2: { ...base.postgres!, startWal: db2Start } } } : {}) } };
  };
  // Kept: b (the newest before the cutoff) and c; a is out of the window.
  const manifests = [withDb('a', '2024-01-01T00:00:00.000Z', seg(1), seg(2)), withDb('b', '2024-01-02T00:00:00.000Z', seg(3), seg(5)), withDb('c', '2024-01-04T00:00:00.000Z', seg(7), seg(8))];
  const plan = planRetention({
    manifests,
    folders: ['a', 'b', 'c'],
    walFiles: [seg(1), seg(2), seg(3), seg(4)],
    cutoff: new Date('2024-01-03T00:00:00.000Z'),
    databaseWalFiles: { db2: [seg(1), seg(4), seg(5), seg(6)], db3: [seg(1)] },
  });
  expect(plan.wal).toEqual([seg(1), seg(2)]);
  // db2's oldest kept base starts at segment 5; db3 has no kept base: all of its WAL stays.
  expect(plan.databaseWal).toEqual({ db2: [seg(1), seg(4)], db3: [] });
  expect([walPrefixOf(), walPrefixOf('global'), walPrefixOf('db2')]).toEqual(['wal', 'wal', 'wal@db2']);
});
