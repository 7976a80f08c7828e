import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { restoreCache, saveCache, type CacheScope, type JobCacheDeps } from '../../activities/job-cache';
import { createDb, type Db } from '../../core/db';
import { FsObjectStore } from '../../core/fs-object-store';
import { listCaches } from '../../core/stores/caches-store';
import { platformInfo } from '../harness/platform-info';
import { createPrivateRepo, createTenantWithAdmin } from '../helpers/api-client';
import { tempDir } from '../helpers/git';

// Issue 17 item 3's size cap per repository (DOTGIT_CACHE_REPO_MAX_MB; ADR 0030): a save that takes
// the repository's caches past the cap evicts the least recently used, restores counting as use.
// The sandbox host's own cache code against the platform's Postgres and a filesystem object store.

let db: Db;
const store = new FsObjectStore(path.join(tempDir('cache-evict-'), 'objects'));

beforeAll(() => {
  db = createDb(platformInfo().databaseUrl, 2);
});

afterAll(async () => {
  await db.end();
});

test('past the cap, the least recently used cache goes (a restore counts as use), with its archive and a line in the log', async () => {
  const owner = await createTenantWithAdmin();
  const repo = await createPrivateRepo(owner, 'cache-evict');
  const { tenant_id: tenantId, id: repoId } = (
    await db.query('SELECT r.tenant_id, r.id FROM repos r JOIN tenants t ON t.id = r.tenant_id WHERE t.name = $1 AND r.name = $2', [owner.tenant, repo])
  ).rows[0];
  // 30 KB that do not compress: three archives pass a 70 KB cap, two do not.
  const deps: JobCacheDeps = { dbOf: () => db, store, maxRepoBytes: 70 * 1024, tmpDir: tempDir('cache-evict-tmp-') };
  const scope: CacheScope = { tenantId: Number(tenantId), repo, ref: 'refs/heads/main', runId: 'pipeline:cache-evict', job: 'deps' };
  const workspace = async () => {
    const ws = tempDir('cache-evict-ws-');
    await fs.mkdir(path.join(ws, 'deps'));
    await fs.writeFile(path.join(ws, 'deps', 'blob'), randomBytes(30 * 1024));
    return ws;
  };
  const log: string[] = [];
  const save = async (key: string) => saveCache(deps, scope, { key, paths: ['deps'], restoreKeys: [] }, key, await workspace(), (l) => log.push(l));
  await save('k1');
  await save('k2');
  const keys = async () => (await listCaches(db, Number(tenantId), Number(repoId), {})).rows.map((r) => [r.key, r.object_key] as const);
  const [[, k2Object]] = (await keys()).filter(([k]) => k === 'k2');
  // k1 restored: k2 is now the least recently used.
  const restored = await restoreCache(deps, scope, { key: 'k1', paths: ['deps'], restoreKeys: [] }, tempDir('cache-evict-restore-'), (l) => log.push(l));
  expect(restored).toEqual({ key: 'k1', hit: true });
  await save('k3');
  expect((await keys()).map(([k]) => k)).toEqual(['k3', 'k1']);
  expect(log).toContainEqual(expect.stringMatching(/^dotgit: cache k2 evicted \(the repository's caches passed 71680 bytes; least recently used first\)$/));
  expect(await store.exists(k2Object)).toBe(false);
  // Under the cap nothing else went.
  expect(log.filter((l) => l.includes('evicted'))).toHaveLength(1);
});
