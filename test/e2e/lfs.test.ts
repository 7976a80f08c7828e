import { createHash, randomBytes } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { ensureGitLfs } from '../../infra/provision/git-lfs';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, uniqueName, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, tempDir } from '../helpers/git';

// Git LFS through the gateway with the real `git lfs` client: push and clone of a large file,
// permissions (read-only token, anonymous), and bad input at the batch and transfer endpoints.

const LFS = 'application/vnd.git-lfs+json';
// git-helper runs git with GIT_CONFIG_GLOBAL=/dev/null, so a fresh clone has no LFS filter unless
// given one here (`git lfs install --local` only works inside an existing repository).
const LFS_FILTERS = ['-c', 'filter.lfs.smudge=git-lfs smudge -- %f', '-c', 'filter.lfs.process=git-lfs filter-process', '-c', 'filter.lfs.required=true', '-c', 'filter.lfs.clean=git-lfs clean -- %f'];

let owner: TenantFixture;
let readToken: string;
let repo: string;
let big: Buffer;
let oid: string;

/** fetch() bodies are typed as Uint8Array, not Buffer. */
const bytes = (b: Buffer) => new Uint8Array(b);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const storePath = (r: string, o: string) => path.join(platformInfo().dataDir, 'objects', 'lfs', owner.tenant, r, o.slice(0, 2), o.slice(2, 4), o);
const lfsBase = (r: string) => `/${owner.tenant}/${r}.git/info/lfs`;
const batch = (r: string, body: unknown, token?: string) =>
  api('POST', `${lfsBase(r)}/objects/batch`, { token, headers: { accept: LFS, 'content-type': LFS }, body });

async function createRepo(visibility: 'public' | 'private'): Promise<string> {
  const name = uniqueName('lfs');
  const r = await api('POST', '/api/v1/repos', { token: owner.token, body: { owner: owner.tenant, name, visibility } });
  expect(r.status).toBe(201);
  return name;
}

/** A local repository tracking `*.bin` with LFS, with `files` committed on main. */
async function lfsWorkTree(files: Record<string, Buffer>): Promise<string> {
  const dir = tempDir('dotgit-lfs-');
  for (const args of [['init', '-q', '-b', 'main'], ['lfs', 'install', '--local'], ['lfs', 'track', '*.bin']]) {
    const r = await git(args, dir);
    expect(r).toMatchObject({ code: 0 });
  }
  for (const [name, content] of Object.entries(files)) await fs.writeFile(path.join(dir, name), content);
  await git(['add', '-A'], dir);
  expect((await git(['commit', '-qm', 'lfs files'], dir)).code).toBe(0);
  return dir;
}

async function lfsClone(url: string): Promise<{ dir: string; code: number; stderr: string }> {
  const dir = path.join(tempDir('dotgit-lfs-clone-'), 'c');
  const r = await git([...LFS_FILTERS, 'clone', '-q', url, dir]);
  return { dir, code: r.code, stderr: r.stderr };
}

beforeAll(async () => {
  await ensureGitLfs({ info: () => undefined, debug: () => undefined, warn: (m) => console.warn(m) });
  owner = await createTenantWithAdmin();
  const t = await api<{ token: string }>('POST', '/api/v1/tokens', { token: owner.token, body: { scopes: ['read'] } });
  expect(t.status).toBe(201);
  readToken = t.body.token;
  repo = await createRepo('private');
  big = randomBytes(2 * 1024 * 1024);
  oid = sha256(big);
  const work = await lfsWorkTree({ 'big.bin': big });
  const push = await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work);
  expect(push).toMatchObject({ code: 0 });
  // locks/verify answers an empty list. On a 404 git-lfs would warn, or silently write
  // `lfs.<url with the token>.locksverify=false` into .git/config.
  expect(push.stderr).not.toMatch(/locking API/i);
  expect((await git(['config', '--list'], work)).stdout).not.toMatch(/locksverify/);
});

test('git lfs push stores a pointer in git and the bytes in the object store', async () => {
  const bare = path.join(platformInfo().dataDir, 'repos', owner.tenant, `${repo}.git`);
  const pointer = await git(['--git-dir', bare, 'cat-file', '-p', 'main:big.bin']);
  expect(pointer.stdout).toContain('version https://git-lfs.github.com/spec/v1');
  expect(pointer.stdout).toContain(`oid sha256:${oid}`);
  expect(pointer.stdout).toContain(`size ${big.length}`);
  expect((await fs.readFile(storePath(repo, oid))).equals(big)).toBe(true);
});

test('a fresh clone gets the LFS content byte for byte', async () => {
  const c = await lfsClone(cloneUrl(owner.tenant, repo, owner.token));
  expect(c).toMatchObject({ code: 0 });
  expect((await fs.readFile(path.join(c.dir, 'big.bin'))).equals(big)).toBe(true);
});

describe('read-only token', () => {
  test('downloads LFS objects', async () => {
    const c = await lfsClone(cloneUrl(owner.tenant, repo, readToken));
    expect(c).toMatchObject({ code: 0 });
    expect((await fs.readFile(path.join(c.dir, 'big.bin'))).equals(big)).toBe(true);
  });

  test('cannot upload: batch upload is 403 and git lfs push fails', async () => {
    const other = randomBytes(4096);
    const r = await batch(repo, { operation: 'upload', transfers: ['basic'], objects: [{ oid: sha256(other), size: other.length }] }, readToken);
    expect(r.status).toBe(403);
    expect(r.headers.get('content-type')).toContain(LFS);
    expect(r.body.message).toMatch(/may not upload/);

    // `git push` would already be refused by receive-pack; `git lfs push` talks to LFS alone.
    const work = await lfsWorkTree({ 'other.bin': other });
    await git(['remote', 'add', 'origin', cloneUrl(owner.tenant, repo, readToken)], work);
    const push = await git(['lfs', 'push', 'origin', 'main'], work);
    expect(push.code).not.toBe(0);
    expect(push.stderr).toMatch(/may not upload/);
    expect(existsSync(storePath(repo, sha256(other)))).toBe(false);
  });
});

describe('anonymous', () => {
  test('is asked for credentials on a private repository', async () => {
    const r = await batch(repo, { operation: 'download', objects: [{ oid, size: big.length }] });
    expect(r.status).toBe(401);
    expect(r.headers.get('lfs-authenticate')).toMatch(/^Basic /);
    expect(r.headers.get('www-authenticate')).toMatch(/^Basic /);
    // Nor can it fetch the object directly.
    expect((await api('GET', `${lfsBase(repo)}/objects/${oid}`)).status).toBe(401);
  });

  test('clones the LFS content of a public repository', async () => {
    const pub = await createRepo('public');
    const content = randomBytes(100_000);
    const work = await lfsWorkTree({ 'pub.bin': content });
    expect((await git(['push', cloneUrl(owner.tenant, pub, owner.token), 'main'], work)).code).toBe(0);
    const c = await lfsClone(cloneUrl(owner.tenant, pub));
    expect(c).toMatchObject({ code: 0 });
    expect((await fs.readFile(path.join(c.dir, 'pub.bin'))).equals(content)).toBe(true);
    // ...but may not upload to it.
    expect((await batch(pub, { operation: 'upload', objects: [{ oid: sha256(content), size: content.length }] })).status).toBe(401);
  });
});

describe('actions', () => {
  test('hrefs are on the public URL and authorised by their own header, for that object only', async () => {
    const r = await batch(repo, { operation: 'download', objects: [{ oid, size: big.length }] }, owner.token);
    expect(r.status).toBe(200);
    const obj = r.body.objects[0];
    expect(obj.authenticated).toBe(true);
    const { href, header } = obj.actions.download;
    expect(href).toBe(`${platformInfo().gatewayUrl}${lfsBase(repo)}/objects/${oid}`);
    // No Basic credentials: the action header alone authorises the transfer.
    const got = await fetch(href, { headers: header });
    expect(got.status).toBe(200);
    expect(Buffer.from(await got.arrayBuffer()).equals(big)).toBe(true);
    // The same token does not open another object, nor upload.
    const otherOid = 'a'.repeat(64);
    expect((await fetch(href.replace(oid, otherOid), { headers: header })).status).toBe(401);
    expect((await fetch(href, { method: 'PUT', headers: header, body: bytes(big) })).status).toBe(401);
  });

  test('an already stored object needs no upload action', async () => {
    const r = await batch(repo, { operation: 'upload', objects: [{ oid, size: big.length }] }, owner.token);
    expect(r.status).toBe(200);
    expect(r.body.objects[0]).toEqual({ oid, size: big.length });
  });

  test('a missing object is a per-object 404', async () => {
    const r = await batch(repo, { operation: 'download', objects: [{ oid: 'b'.repeat(64), size: 3 }] }, owner.token);
    expect(r.status).toBe(200);
    expect(r.body.objects[0].error.code).toBe(404);
  });
});

describe('bad input', () => {
  test('a bad oid or size is a per-object 422; the valid objects still get actions', async () => {
    const r = await batch(repo, {
      operation: 'download',
      objects: [{ oid: '../../etc/passwd', size: 1 }, { oid: 'A'.repeat(64), size: 1 }, { oid: 'c'.repeat(64), size: -1 }, { oid, size: big.length }],
    }, owner.token);
    expect(r.status).toBe(200);
    expect(r.body.objects.map((o: any) => o.error?.code ?? 'ok')).toEqual([422, 422, 422, 'ok']);
    expect((await api('GET', `${lfsBase(repo)}/objects/not-an-oid`, { token: owner.token })).status).toBe(422);
  });

  test('a malformed body is refused with a JSON message', async () => {
    const res = await fetch(`${platformInfo().gatewayUrl}${lfsBase(repo)}/objects/batch`, {
      method: 'POST',
      headers: { authorization: `Bearer ${owner.token}`, 'content-type': LFS },
      body: '{"operation": "download", "objects": [',
    });
    expect(res.status).toBe(400);
    expect((await res.json()).message).toBeTruthy();
    for (const body of [{ operation: 'delete', objects: [] }, { operation: 'download' }, { operation: 'download', transfers: ['tus'], objects: [] }]) {
      const r = await batch(repo, body, owner.token);
      expect(r.status).toBe(422);
      expect(r.body.message).toBeTruthy();
    }
  });

  test('an upload whose content does not match its oid is refused and not stored', async () => {
    const claimed = randomBytes(64 * 1024);
    const claimedOid = sha256(claimed);
    const r = await batch(repo, { operation: 'upload', objects: [{ oid: claimedOid, size: claimed.length }] }, owner.token);
    const { upload, verify } = r.body.objects[0].actions;
    const wrong = randomBytes(claimed.length);
    const put = await fetch(upload.href, { method: 'PUT', headers: { ...upload.header, 'content-type': 'application/octet-stream' }, body: bytes(wrong) });
    expect(put.status).toBe(422);
    expect((await put.json()).message).toMatch(/hashes to/);
    // Wrong length, too.
    const short = await fetch(upload.href, { method: 'PUT', headers: upload.header, body: bytes(claimed.subarray(1)) });
    expect(short.status).toBe(422);
    expect(existsSync(storePath(repo, claimedOid))).toBe(false);
    expect((await fs.readdir(path.dirname(storePath(repo, claimedOid))).catch(() => [])).length).toBe(0); // no temp file left
    const v = await fetch(verify.href, { method: 'POST', headers: { ...verify.header, 'content-type': LFS }, body: JSON.stringify({ oid: claimedOid, size: claimed.length }) });
    expect(v.status).toBe(404);

    // The right content is accepted and verifies.
    expect((await fetch(upload.href, { method: 'PUT', headers: upload.header, body: bytes(claimed) })).status).toBe(200);
    expect((await fs.readFile(storePath(repo, claimedOid))).equals(claimed)).toBe(true);
    const ok = await fetch(verify.href, { method: 'POST', headers: { ...verify.header, 'content-type': LFS }, body: JSON.stringify({ oid: claimedOid, size: claimed.length }) });
    expect(ok.status).toBe(200);
  });
});
