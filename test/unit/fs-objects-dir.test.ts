import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../core/config';
import { createObjectStore, fsObjectsDir } from '../../core/object-store-factory';

// DOTGIT_FS_OBJECTS_DIR: processes with data dirs of their own (the local fleet) share one fs store.

test('the fs store lives under the data dir unless DOTGIT_FS_OBJECTS_DIR names another folder', () => {
  expect(fsObjectsDir(loadConfig({}), { objects: '/data/objects' })).toBe('/data/objects');
  expect(fsObjectsDir(loadConfig({ DOTGIT_FS_OBJECTS_DIR: 'shared/objects' }), { objects: '/data/objects' })).toBe(path.resolve('shared/objects'));
  expect(fsObjectsDir(loadConfig({ DOTGIT_OBJECT_STORE: 's3', DOTGIT_S3_BUCKET: 'b-1', DOTGIT_FS_OBJECTS_DIR: '/x' }), { objects: '/data/objects' })).toBeUndefined();
});

test('two stores of processes with different data dirs and one DOTGIT_FS_OBJECTS_DIR see the same objects', async () => {
  const shared = mkdtempSync(path.join(os.tmpdir(), 'objects-'));
  const config = loadConfig({ DOTGIT_FS_OBJECTS_DIR: shared });
  const a = createObjectStore(config, { objects: mkdtempSync(path.join(os.tmpdir(), 'a-')) });
  const b = createObjectStore(config, { objects: mkdtempSync(path.join(os.tmpdir(), 'b-')) });
  await a.put('logs/x.txt', Buffer.from('hello'));
  expect((await b.getBuffer('logs/x.txt')).toString()).toBe('hello');
});
