import path from 'node:path';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, uniqueName } from '../helpers/api-client';
import { cloneUrl, git, localRepo, tempDir, writeFiles } from '../helpers/git';

// The git-server's caches, observed through its /metrics: identical fetches share one
// upload-pack, a push invalidates, and ref advertisements are served from memory.

async function metric(name: string, label?: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${platformInfo().gitPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name) && (label ? l.includes(label) : l.startsWith(`${name} `)));
  return line ? Number(line.split(' ').pop()) : 0;
}
const processes = () => metric('dotgit_upload_pack_processes_total');

let url: string;
let work: string;

beforeAll(async () => {
  const owner = await createTenantWithAdmin();
  const repo = uniqueName('cache');
  await api('POST', '/api/v1/repos', { token: owner.token, body: { owner: owner.tenant, name: repo } });
  url = cloneUrl(owner.tenant, repo, owner.token);
  const files: Record<string, string> = {};
  for (let i = 0; i < 200; i++) files[`src/f${i}.txt`] = `file ${i}\n`.repeat(50);
  work = await localRepo(files);
  expect((await git(['push', url, 'main'], work)).code).toBe(0);
});

const clone = async () => {
  const r = await git(['-c', 'protocol.version=2', 'clone', '-q', '--no-checkout', url, path.join(tempDir(), 'c')]);
  expect(r.code).toBe(0);
};

test('a second identical clone is served from the cache without a git process', async () => {
  const p0 = await processes();
  await clone();
  const p1 = await processes();
  expect(p1 - p0).toBeGreaterThanOrEqual(1);
  const hits0 = (await metric('dotgit_pack_cache_requests_total', 'outcome="memory"')) + (await metric('dotgit_pack_cache_requests_total', 'outcome="disk"'));
  // Bytes answered from the cache (issue 14 item 2): the clone's pack, at least the files' text compressed.
  const bytes0 = (await metric('dotgit_pack_cache_bytes_total', 'outcome="memory"')) + (await metric('dotgit_pack_cache_bytes_total', 'outcome="disk"'));
  await clone();
  expect(await processes()).toBe(p1);
  const hits1 = (await metric('dotgit_pack_cache_requests_total', 'outcome="memory"')) + (await metric('dotgit_pack_cache_requests_total', 'outcome="disk"'));
  expect(hits1 - hits0).toBe(p1 - p0);
  const bytes1 = (await metric('dotgit_pack_cache_bytes_total', 'outcome="memory"')) + (await metric('dotgit_pack_cache_bytes_total', 'outcome="disk"'));
  expect(bytes1 - bytes0).toBeGreaterThan(1000);
});

test('a push invalidates: the next clone is produced anew and sees the new commit', async () => {
  await writeFiles(work, { 'new.txt': 'new\n' });
  await git(['add', '-A'], work);
  await git(['commit', '-qm', 'new'], work);
  expect((await git(['push', url, 'main'], work)).code).toBe(0);
  const p0 = await processes();
  const dir = path.join(tempDir(), 'c');
  expect((await git(['clone', '-q', url, dir])).code).toBe(0);
  expect(await processes()).toBeGreaterThan(p0);
  expect((await git(['rev-parse', 'HEAD'], dir)).stdout.trim()).toBe((await git(['rev-parse', 'HEAD'], work)).stdout.trim());
});

test('10 concurrent identical clones spawn one upload-pack per distinct request', async () => {
  // A new commit, so nothing of this state is cached yet.
  await writeFiles(work, { 'again.txt': 'again\n' });
  await git(['add', '-A'], work);
  await git(['commit', '-qm', 'again'], work);
  expect((await git(['push', url, 'main'], work)).code).toBe(0);
  const p0 = await processes();
  await Promise.all(Array.from({ length: 10 }, () => clone()));
  // A protocol v2 clone makes two requests (ls-refs, fetch): two processes for all ten clones.
  expect((await processes()) - p0).toBe(2);
});

test('ref advertisements are cached until the next push', async () => {
  const v0 = ['-c', 'protocol.version=0', 'ls-remote', url];
  await git(v0);
  const hits = await metric('dotgit_ref_advertisement_cache_total', 'result="hit"');
  expect((await git(v0)).code).toBe(0);
  expect(await metric('dotgit_ref_advertisement_cache_total', 'result="hit"')).toBe(hits + 1);
  await git(['commit', '-q', '--allow-empty', '-m', 'empty'], work);
  await git(['push', url, 'main'], work);
  const misses = await metric('dotgit_ref_advertisement_cache_total', 'result="miss"');
  const ls = await git(v0);
  expect(ls.stdout).toContain((await git(['rev-parse', 'HEAD'], work)).stdout.trim());
  expect(await metric('dotgit_ref_advertisement_cache_total', 'result="miss"')).toBe(misses + 1);
});
