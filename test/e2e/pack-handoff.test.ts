import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { platformInfo } from '../harness/platform-info';
import { createPrivateRepo, createTenantWithAdmin, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, tempDir } from '../helpers/git';

// ADR 0040: a pack-cache hit is named by the git-server and streamed by the gateway from the
// shared folder. The git-server still decides who may fetch: a cached answer is no reason to serve.

async function handoffs(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${platformInfo().gitPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('dotgit_pack_cache_handoffs_total '));
  return line ? Number(line.split(' ').pop()) : 0;
}

const pkt = (line: string) => (line.length + 4).toString(16).padStart(4, '0') + line;

/** One protocol-v2 fetch of `want` straight through the gateway, as git sends it. */
async function fetchPack(owner: string, repo: string, want: string, headers: Record<string, string>): Promise<{ status: number; body: Buffer; headers: Headers }> {
  const body = pkt('command=fetch\n') + '0001' + pkt('no-progress\n') + pkt(`want ${want}\n`) + pkt('done\n') + '0000';
  const res = await fetch(`${platformInfo().gatewayUrl}/${owner}/${repo}.git/git-upload-pack`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-git-upload-pack-request', 'git-protocol': 'version=2', ...headers },
    body,
  });
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()), headers: res.headers };
}

const basic = (token: string) => ({ authorization: `Basic ${Buffer.from(`x:${token}`).toString('base64')}` });

let owner: TenantFixture;
let stranger: TenantFixture;
let repo: string;
let tip: string;

beforeAll(async () => {
  owner = await createTenantWithAdmin();
  stranger = await createTenantWithAdmin();
  repo = await createPrivateRepo(owner, 'handoff');
  // Incompressible and over 1 MiB: the answer is kept on disk only (small ones are served from memory).
  const work = await localRepo({ 'blob.bin': randomBytes(3 * 1024 * 1024).toString('base64'), 'README.md': 'handoff\n' });
  expect((await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work)).code).toBe(0);
  tip = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
});

test('a repeated clone is streamed by the gateway from the pack cache, byte for byte what git made', async () => {
  const first = await fetchPack(owner.tenant, repo, tip, basic(owner.token));
  expect(first.status).toBe(200);
  const before = await handoffs();
  const second = await fetchPack(owner.tenant, repo, tip, basic(owner.token));
  expect(second.status).toBe(200);
  expect(await handoffs()).toBe(before + 1);
  expect(second.body.equals(first.body)).toBe(true);
  expect(second.headers.get('content-length')).toBe(String(first.body.length));
  expect(second.headers.get('content-type')).toBe('application/x-git-upload-pack-result');
  expect(second.headers.get('x-dotgit-pack-file')).toBeNull();

  // And a real clone of the cached answer is a whole repository.
  const dir = path.join(tempDir(), 'c');
  const h0 = await handoffs();
  expect((await git(['-c', 'protocol.version=2', 'clone', '-q', cloneUrl(owner.tenant, repo, owner.token), dir])).code).toBe(0);
  expect((await git(['rev-parse', 'HEAD'], dir)).stdout.trim()).toBe(tip);
  expect((await git(['fsck', '--no-progress'], dir)).code).toBe(0);
  // Its ls-refs answer is small (memory); the fetch is the handed-off one when git asks the same as before.
  expect(await handoffs()).toBeGreaterThanOrEqual(h0);
});

test('a cached answer is still refused to a token without access and to anonymous callers', async () => {
  await fetchPack(owner.tenant, repo, tip, basic(owner.token)); // cached now, whatever ran before
  const before = await handoffs();
  const denied = await fetchPack(owner.tenant, repo, tip, basic(stranger.token));
  expect(denied.status).toBe(404);
  expect(denied.body.toString()).not.toContain('PACK');
  const anonymous = await fetchPack(owner.tenant, repo, tip, {});
  expect(anonymous.status).toBe(401);
  const clone = await git(['clone', '-q', '--no-checkout', cloneUrl(owner.tenant, repo, stranger.token), path.join(tempDir(), 'c')]);
  expect(clone.code).not.toBe(0);
  expect(await handoffs()).toBe(before);
});

test("a client's own handoff headers are dropped: it cannot name a file or pose as the gateway", async () => {
  // Even the folder's real volume id, sent by a client, opens nothing.
  const volume = (await readFile(path.join(platformInfo().dataDir, 'cache', 'packs', '.volume-id'), 'utf8')).trim();
  const forged = { 'x-dotgit-pack-volume': volume, 'x-dotgit-pack-file': `${'a'.repeat(2)}/${'a'.repeat(64)}.pack-response` };
  const denied = await fetchPack(owner.tenant, repo, tip, { ...basic(stranger.token), ...forged });
  expect(denied.status).toBe(404);
  const ok = await fetchPack(owner.tenant, repo, tip, { ...basic(owner.token), ...forged });
  expect(ok.status).toBe(200);
  expect(ok.body.includes(Buffer.from('PACK'))).toBe(true);
});
