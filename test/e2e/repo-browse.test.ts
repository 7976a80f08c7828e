import http from 'node:http';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { platformInfo } from '../harness/platform-info';
import { api, createPrivateRepo, createTenantWithAdmin, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom, writeFiles } from '../helpers/git';

// Issue 18's repository browser (ADR 0034): branches, tags, commits with their latest run, trees
// and raw files at any ref, read through the api from the repository's storage node. Bad refs and
// paths are 400, unknown ones 404, another tenant sees nothing (404).

const PIPELINE = `
jobs:
  build:
    steps:
      - run: echo browsed
`;
// Bytes that are not UTF-8 and contain NULs: the raw route must hand them back unchanged.
const BINARY = Buffer.from([0, 1, 2, 255, 254, 0x89, 0x50, 0x4e, 0x47, 0, 10, 13, 0]);
const BIG = 10 * 1024 * 1024 + 1;

let acme: TenantFixture;
let repo: string;
let base: string;
let first: string;
let tip: string;
let releaseTip: string;
let runId: string;

/** The status of a GET whose target is sent exactly as written (no dot-segment resolution). */
function rawStatus(target: string): Promise<number> {
  const gw = new URL(platformInfo().gatewayUrl);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: gw.hostname, port: gw.port, path: target, headers: { authorization: `Bearer ${acme.token}` } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

const sha = async (dir: string, rev: string) => (await git(['rev-parse', rev], dir)).stdout.trim();

beforeAll(async () => {
  acme = await createTenantWithAdmin();
  repo = await createPrivateRepo(acme, 'browse');
  base = `/api/v1/repos/${acme.tenant}/${repo}`;
  const work = await localRepo({ 'README.md': '# hello\n', 'src/app.ts': 'export const a = 1;\n', 'src/lib/util.ts': 'export {};\n', 'docs/a b.txt': 'spaced\n' });
  first = await sha(work, 'HEAD');
  await fs.writeFile(path.join(work, 'logo.bin'), BINARY);
  await fs.writeFile(path.join(work, 'big.txt'), 'a'.repeat(BIG));
  await writeFiles(work, { '.dotgit/pipeline.yml': PIPELINE });
  await git(['add', '-A'], work);
  expect((await git(['commit', '-q', '-m', 'second: binary, big file and a pipeline'], work)).code).toBe(0);
  tip = await sha(work, 'HEAD');
  await git(['checkout', '-q', '-b', 'release/1.x', first], work);
  await writeFiles(work, { 'README.md': '# release\n' });
  expect((await git(['commit', '-qam', 'release readme'], work)).code).toBe(0);
  releaseTip = await sha(work, 'HEAD');
  await git(['tag', 'light', first], work);
  await git(['tag', '-a', 'v1.0', '-m', 'version one', releaseTip], work);
  const push = await git(['push', cloneUrl(acme.tenant, repo, acme.token), 'main', 'release/1.x', 'light', 'v1.0'], work);
  expect(push.code).toBe(0);
  // Only main has the pipeline file: one run, of main's tip.
  [runId] = runIdsFrom(push.stderr);
  expect(runId).toBeDefined();
});

test('branches and tags by name, each with its commit (an annotated tag peeled); the default branch marked', async () => {
  const branches = await api('GET', `${base}/branches`, { token: acme.token });
  expect(branches.status).toBe(200);
  expect(branches.body).toMatchObject({ defaultBranch: 'main', truncated: false });
  expect(branches.body.branches.map((b: any) => [b.name, b.commit, b.default])).toEqual([
    ['main', tip, true],
    ['release/1.x', releaseTip, false],
  ]);
  expect(Date.parse(branches.body.branches[0].committedAt)).not.toBeNaN();
  const tags = await api('GET', `${base}/tags`, { token: acme.token });
  expect(tags.status).toBe(200);
  expect(tags.body.tags.map((t: any) => [t.name, t.commit])).toEqual([
    ['light', first],
    ['v1.0', releaseTip],
  ]);
});

test('commits of a ref, newest first, each with its latest run; limit; a tag or commit id as the ref', async () => {
  const main = await api('GET', `${base}/commits`, { token: acme.token });
  expect(main.status).toBe(200);
  expect(main.body).toMatchObject({ ref: 'refs/heads/main', commit: tip });
  expect(main.body.commits.map((c: any) => [c.sha, c.subject])).toEqual([
    [tip, 'second: binary, big file and a pipeline'],
    [first, 'initial'],
  ]);
  expect(main.body.commits[0]).toMatchObject({ parents: [first], author: { name: 'Test', email: 'test@example.com' }, run: { id: runId, ref: 'refs/heads/main', attempt: 1 } });
  expect(['queued', 'running', 'success', 'failure', 'cancelled']).toContain(main.body.commits[0].run.status);
  expect(main.body.commits[1].run).toBeNull();

  const one = await api('GET', `${base}/commits?ref=release/1.x&limit=1`, { token: acme.token });
  expect(one.status).toBe(200);
  expect(one.body.commits.map((c: any) => c.sha)).toEqual([releaseTip]);
  expect((await api('GET', `${base}/commits?ref=v1.0`, { token: acme.token })).body.commits.map((c: any) => c.sha)).toEqual([releaseTip, first]);
  expect((await api('GET', `${base}/commits?ref=${first}`, { token: acme.token })).body.commits.map((c: any) => c.sha)).toEqual([first]);
});

test('the tree at a ref: directories first; a file answers its size; the same path differs by ref', async () => {
  const root = await api('GET', `${base}/tree`, { token: acme.token });
  expect(root.status).toBe(200);
  expect(root.body).toMatchObject({ ref: 'refs/heads/main', commit: tip, path: '', type: 'tree', truncated: false });
  expect(root.body.entries.map((e: any) => `${e.type} ${e.path}`)).toEqual(['tree .dotgit', 'tree docs', 'tree src', 'blob README.md', 'blob big.txt', 'blob logo.bin']);
  const src = await api('GET', `${base}/tree/src?ref=main`, { token: acme.token });
  expect(src.body.entries.map((e: any) => [e.type, e.name, e.path, e.size])).toEqual([
    ['tree', 'lib', 'src/lib', null],
    ['blob', 'app.ts', 'src/app.ts', 20],
  ]);
  const file = await api('GET', `${base}/tree/src/lib/util.ts`, { token: acme.token });
  expect(file.body).toMatchObject({ type: 'blob', path: 'src/lib/util.ts', size: 11, entries: null, mode: '100644' });
  const spaced = await api('GET', `${base}/tree/docs/a%20b.txt`, { token: acme.token });
  expect(spaced.body).toMatchObject({ type: 'blob', path: 'docs/a b.txt' });
  // At the release branch (a ref with a slash, given as ?ref=) and at a commit id.
  const release = await api('GET', `${base}/tree?ref=release/1.x`, { token: acme.token });
  expect(release.body.entries.map((e: any) => e.path)).toEqual(['docs', 'src', 'README.md']);
  expect((await api('GET', `${base}/tree/logo.bin?ref=${first}`, { token: acme.token })).status).toBe(404);
});

test('raw: the bytes at a ref as a download that is never rendered on this origin; over 10 MiB is 413', async () => {
  const headers = { authorization: `Bearer ${acme.token}` };
  const raw = await fetch(`${platformInfo().gatewayUrl}${base}/raw/logo.bin`, { headers });
  expect(raw.status).toBe(200);
  expect(Buffer.from(await raw.arrayBuffer())).toEqual(BINARY);
  expect(raw.headers.get('content-type')).toBe('application/octet-stream');
  expect(raw.headers.get('content-disposition')).toBe("attachment; filename*=UTF-8''logo.bin");
  expect(raw.headers.get('x-content-type-options')).toBe('nosniff');
  expect(raw.headers.get('content-security-policy')).toMatch(/sandbox/);
  const release = await fetch(`${platformInfo().gatewayUrl}${base}/raw/README.md?ref=release/1.x`, { headers });
  expect(await release.text()).toBe('# release\n');
  const tagged = await fetch(`${platformInfo().gatewayUrl}${base}/raw/README.md?ref=light`, { headers });
  expect(await tagged.text()).toBe('# hello\n');
  const big = await api('GET', `${base}/raw/big.txt`, { token: acme.token });
  expect(big.status).toBe(413);
  expect(big.body.error.message).toMatch(/10485761 bytes/);
});

test('bad refs, paths and limits are 400 naming the problem; unknown refs and paths are 404', async () => {
  for (const ref of ['a..b', '-x', 'x.lock', 'a//b', 'a@{1}', 'a~1', 'HEAD^', '.hidden', 'x/']) {
    for (const url of [`${base}/commits?ref=${encodeURIComponent(ref)}`, `${base}/tree?ref=${encodeURIComponent(ref)}`, `${base}/raw/README.md?ref=${encodeURIComponent(ref)}`]) {
      const r = await api('GET', url, { token: acme.token });
      expect([url, r.status]).toEqual([url, 400]);
      expect(r.body.error.message).toMatch(/ref/);
    }
  }
  for (const limit of ['0', '101', 'x']) {
    const r = await api('GET', `${base}/commits?limit=${limit}`, { token: acme.token });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toMatch(/limit/);
  }
  // Dot and empty segments, sent as written (fetch would resolve them): refused (by the gateway first).
  for (const p of ['src/../README.md', 'src/%2e%2e/README.md', 'src/./app.ts', 'src//app.ts']) {
    expect([p, await rawStatus(`${base}/tree/${p}`)]).toEqual([p, 400]);
  }
  const unknownRef = await api('GET', `${base}/tree?ref=nope`, { token: acme.token });
  expect(unknownRef.status).toBe(404);
  expect(unknownRef.body.error.message).toMatch(/ref "nope" not found/);
  expect((await api('GET', `${base}/commits?ref=${'0'.repeat(40)}`, { token: acme.token })).status).toBe(404);
  const unknownPath = await api('GET', `${base}/tree/src/nope.ts`, { token: acme.token });
  expect(unknownPath.status).toBe(404);
  expect(unknownPath.body.error.message).toMatch(/path "src\/nope.ts" not found/);
  // A directory has no bytes.
  expect((await api('GET', `${base}/raw/src`, { token: acme.token })).status).toBe(404);
});

test('another tenant and anonymous callers get 404 for a private repository, as for its other reads', async () => {
  const other = await createTenantWithAdmin();
  for (const p of ['branches', 'tags', 'commits', 'tree', 'tree/README.md', 'raw/README.md']) {
    const r = await api('GET', `${base}/${p}`, { token: other.token });
    expect([p, r.status]).toEqual([p, 404]);
    expect(r.body.error.message).toMatch(/not found/);
    expect(JSON.stringify(r.body)).not.toContain(tip);
    expect((await api('GET', `${base}/${p}`)).status).toBeGreaterThanOrEqual(401);
    expect((await api('GET', `${base}/${p}`)).status).toBeLessThanOrEqual(404);
  }
  // A read-only token of the tenant reads.
  const read = await api('POST', '/api/v1/tokens', { token: acme.token, body: { scopes: ['read'] } });
  expect((await api('GET', `${base}/raw/README.md`, { token: read.body.token })).text).toBe('# hello\n');
});
