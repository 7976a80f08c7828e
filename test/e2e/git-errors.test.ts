import { promises as fs } from 'node:fs';
import path from 'node:path';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, uniqueName, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, tempDir } from '../helpers/git';

// A fetch of a commit the repository does not have gets git's own answer ("not our ref", an ERR
// pkt-line in a complete 200 body), as git http-backend gives it — not a 502 or a cut-off body —
// and that answer is never kept by the pack cache.

const UNKNOWN = 'deadbeef'.repeat(5);
let t: TenantFixture;
let repo: string;
let work: string;

beforeAll(async () => {
  t = await createTenantWithAdmin();
  repo = uniqueName('errs');
  expect((await api('POST', '/api/v1/repos', { token: t.token, body: { owner: t.tenant, name: repo } })).status).toBe(201);
  work = await localRepo({ 'a.txt': 'a\n' });
  expect((await git(['push', cloneUrl(t.tenant, repo, t.token), 'main'], work)).code).toBe(0);
});

for (const version of [0, 2]) {
  test(`git fetch of an unknown commit over protocol v${version} ends with git's "not our ref" (exit 128), twice`, async () => {
    for (let i = 0; i < 2; i++) {
      const clone = tempDir();
      expect((await git(['init', '-q'], clone)).code).toBe(0);
      const r = await git(['-c', `protocol.version=${version}`, 'fetch', cloneUrl(t.tenant, repo, t.token), UNKNOWN], clone);
      expect(r.code).toBe(128);
      expect(r.stderr).toMatch(/not our ref/);
      expect(r.stderr).not.toMatch(/RPC failed|502|unexpected disconnect|early EOF/i);
    }
  });
}

async function rawUploadPack(body: string, protocol?: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${platformInfo().gatewayUrl}/${t.tenant}/${repo}.git/git-upload-pack`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`x:${t.token}`).toString('base64')}`,
      'content-type': 'application/x-git-upload-pack-request',
      ...(protocol ? { 'git-protocol': protocol } : {}),
    },
    body,
  });
  return { status: res.status, text: await res.text() };
}

const pkt = (s: string) => (s.length + 4).toString(16).padStart(4, '0') + s;

test('a raw upload-pack request wanting an unknown sha answers 200 with a whole ERR pkt-line, and nothing is cached', async () => {
  const v0 = await rawUploadPack(pkt(`want ${UNKNOWN} side-band-64k\n`) + '0000' + pkt('done\n'));
  const v2 = await rawUploadPack(pkt('command=fetch\n') + '0001' + pkt(`want ${UNKNOWN}\n`) + pkt('done\n') + '0000', 'version=2');
  for (const answer of [v0, v2]) {
    expect(answer.status).toBe(200);
    const m = /([0-9a-f]{4})ERR upload-pack: not our ref/.exec(answer.text);
    expect(m).not.toBeNull();
    // The ERR pkt-line arrived whole: its length prefix covers the rest of the body.
    const start = answer.text.indexOf(m![0]);
    expect(answer.text.length - start).toBeGreaterThanOrEqual(parseInt(m![1], 16));
  }
  // A second identical request gets the same whole answer (not a cached, truncated one).
  expect((await rawUploadPack(pkt(`want ${UNKNOWN} side-band-64k\n`) + '0000' + pkt('done\n'))).text).toBe(v0.text);
  const cacheDir = path.join(platformInfo().dataDir, 'cache', 'packs');
  const cached: string[] = [];
  for (const sub of await fs.readdir(cacheDir).catch(() => [] as string[])) {
    for (const name of await fs.readdir(path.join(cacheDir, sub)).catch(() => [] as string[])) {
      const text = await fs.readFile(path.join(cacheDir, sub, name), 'latin1').catch(() => '');
      if (text.includes(`not our ref ${UNKNOWN}`)) cached.push(name);
    }
  }
  expect(cached).toEqual([]);
  // The repository still serves its real commit.
  const clone = tempDir();
  expect((await git(['clone', '-q', cloneUrl(t.tenant, repo, t.token), clone])).code).toBe(0);
});
