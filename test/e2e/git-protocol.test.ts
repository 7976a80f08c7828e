import { gzipSync } from 'node:zlib';
import path from 'node:path';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, uniqueName, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom, tempDir, writeFiles } from '../helpers/git';

// Git protocol completeness with the stock client (v0 and v2), protected branches, push options,
// and bad input at the git endpoints.

let owner: TenantFixture;
let repo: string;
let work: string;
const url = () => cloneUrl(owner.tenant, repo, owner.token);

async function commitFile(dir: string, name: string, content: string, message: string): Promise<string> {
  await writeFiles(dir, { [name]: content });
  await git(['add', '-A'], dir);
  await git(['commit', '-qm', message], dir);
  return (await git(['rev-parse', 'HEAD'], dir)).stdout.trim();
}

beforeAll(async () => {
  owner = await createTenantWithAdmin();
  repo = uniqueName('proto');
  expect((await api('POST', '/api/v1/repos', { token: owner.token, body: { owner: owner.tenant, name: repo, visibility: 'private' } })).status).toBe(201);
  work = await localRepo({ 'a.txt': 'one\n' });
  for (let i = 2; i <= 5; i++) await commitFile(work, 'a.txt', `${i}\n`.repeat(i), `commit ${i}`);
  await git(['tag', 'light'], work);
  await git(['tag', '-a', '-m', 'annotated', 'v1'], work);
  const push = await git(['push', url(), 'main', 'light', 'v1'], work);
  expect(push.code).toBe(0);
});

describe.each(['0', '2'])('protocol v%s', (version) => {
  const cfg = ['-c', `protocol.version=${version}`];

  test('shallow clone, then deepen', async () => {
    const dir = path.join(tempDir(), 'c');
    expect((await git([...cfg, 'clone', '-q', '--depth', '1', url(), dir])).code).toBe(0);
    expect((await git(['rev-list', '--count', 'HEAD'], dir)).stdout.trim()).toBe('1');
    expect((await git([...cfg, 'fetch', '-q', '--deepen', '2'], dir)).code).toBe(0);
    expect((await git(['rev-list', '--count', 'HEAD'], dir)).stdout.trim()).toBe('3');
    expect((await git([...cfg, 'fetch', '-q', '--unshallow'], dir)).code).toBe(0);
    expect((await git(['rev-list', '--count', 'HEAD'], dir)).stdout.trim()).toBe('5');
  });

  test('partial clone with --filter=blob:none fetches blobs lazily', async () => {
    const dir = path.join(tempDir(), 'c');
    expect((await git([...cfg, 'clone', '-q', '--no-checkout', '--filter=blob:none', url(), dir])).code).toBe(0);
    const missing = (await git(['rev-list', '--objects', '--all', '--missing=print'], dir)).stdout.split('\n').filter((l) => l.startsWith('?'));
    expect(missing.length).toBeGreaterThan(0);
    expect((await git([...cfg, 'checkout', '-q', 'main'], dir)).code).toBe(0);
    expect((await git(['cat-file', '-p', 'HEAD:a.txt'], dir)).stdout).toBe('5\n'.repeat(5));
  });

  test('tags (lightweight and annotated) are listed and cloned', async () => {
    const ls = await git([...cfg, 'ls-remote', '--tags', url()]);
    expect(ls.stdout).toMatch(/refs\/tags\/light/);
    expect(ls.stdout).toMatch(/refs\/tags\/v1\^\{\}/);
    const dir = path.join(tempDir(), 'c');
    await git([...cfg, 'clone', '-q', url(), dir]);
    expect((await git(['tag'], dir)).stdout.split('\n').filter(Boolean).sort()).toEqual(['light', 'v1']);
  });
});

test('branch create and delete', async () => {
  expect((await git(['push', url(), 'main:refs/heads/topic'], work)).code).toBe(0);
  expect((await git(['ls-remote', url(), 'refs/heads/topic'])).stdout).toContain('refs/heads/topic');
  expect((await git(['push', url(), ':refs/heads/topic'], work)).code).toBe(0);
  expect((await git(['ls-remote', url(), 'refs/heads/topic'])).stdout).toBe('');
});

test('a gzip-encoded request body is understood', async () => {
  const head = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
  const pkt = (s: string) => (s.length + 4).toString(16).padStart(4, '0') + s;
  const body = gzipSync(Buffer.from(pkt(`want ${head}\n`) + '0000' + pkt('done\n')));
  const res = await fetch(`${cloneUrl(owner.tenant, repo)}/git-upload-pack`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${owner.token}`,
      'content-type': 'application/x-git-upload-pack-request',
      'content-encoding': 'gzip',
    },
    body,
  });
  expect(res.status).toBe(200);
  expect(Buffer.from(await res.arrayBuffer()).includes(Buffer.from('PACK'))).toBe(true);
});

describe('protected branches', () => {
  let protectedRepo: string;
  let dir: string;
  const purl = () => cloneUrl(owner.tenant, protectedRepo, owner.token);

  beforeAll(async () => {
    protectedRepo = uniqueName('prot');
    await api('POST', '/api/v1/repos', { token: owner.token, body: { owner: owner.tenant, name: protectedRepo } });
    dir = await localRepo({ 'f.txt': '1\n' });
    await commitFile(dir, 'f.txt', '2\n', 'second');
    expect((await git(['push', purl(), 'main', 'main:refs/heads/other'], dir)).code).toBe(0);
    const put = await api('PUT', `/api/v1/repos/${owner.tenant}/${protectedRepo}/protections/main`, {
      token: owner.token,
      body: { allowForcePush: false, allowDeletion: false },
    });
    expect(put.status).toBe(200);
    expect(put.body).toEqual({ pattern: 'main', allowForcePush: false, allowDeletion: false });
  });

  test('force-push and deletion are rejected with a readable remote: message', async () => {
    await git(['reset', '-q', '--hard', 'HEAD~1'], dir);
    await commitFile(dir, 'f.txt', 'rewritten\n', 'rewrite');
    const force = await git(['push', '--force', purl(), 'main'], dir);
    expect(force.code).not.toBe(0);
    expect(force.stderr).toContain('remote: dotgit: rejected refs/heads/main: branch main is protected: force-push (non-fast-forward) is not allowed');
    const del = await git(['push', purl(), ':refs/heads/main'], dir);
    expect(del.code).not.toBe(0);
    expect(del.stderr).toContain('branch main is protected: it cannot be deleted');
    // Unprotected branches still take force pushes.
    expect((await git(['push', '--force', purl(), 'main:refs/heads/other'], dir)).code).toBe(0);
  });

  test('an atomic push with one rejected ref updates none', async () => {
    const before = (await git(['ls-remote', purl()])).stdout;
    const atomic = await git(['push', '--atomic', '--force', purl(), 'main', 'main:refs/heads/third'], dir);
    expect(atomic.code).not.toBe(0);
    expect((await git(['ls-remote', purl()])).stdout).toBe(before);
  });

  test('allowed pushers: others are refused; the rule can be lifted', async () => {
    await api('PUT', `/api/v1/repos/${owner.tenant}/${protectedRepo}/protections/release/*`, {
      token: owner.token,
      body: { allowForcePush: true, allowDeletion: true, pushers: ['someone-else'] },
    });
    const push = await git(['push', purl(), 'main:refs/heads/release/1.0'], dir);
    expect(push.code).not.toBe(0);
    expect(push.stderr).toContain(`${owner.username} may not push to it`);
    const list = await api('GET', `/api/v1/repos/${owner.tenant}/${protectedRepo}/protections`, { token: owner.token });
    expect(list.body.protections.map((p: { pattern: string }) => p.pattern)).toEqual(['main', 'release/*']);
    expect((await api('DELETE', `/api/v1/repos/${owner.tenant}/${protectedRepo}/protections/release/*`, { token: owner.token })).status).toBe(204);
    expect((await git(['push', purl(), 'main:refs/heads/release/1.0'], dir)).code).toBe(0);
  });

  test('only repository admins set protections; bad bodies are 400', async () => {
    const writer = await api<{ token: string }>('POST', '/api/v1/tokens', { token: owner.token, body: { scopes: ['read', 'write'] } });
    expect((await api('PUT', `/api/v1/repos/${owner.tenant}/${protectedRepo}/protections/dev`, { token: writer.body.token, body: {} })).status).toBe(403);
    const bad = await api('PUT', `/api/v1/repos/${owner.tenant}/${protectedRepo}/protections/dev`, { token: owner.token, body: { allowForcePush: 'yes' } });
    expect(bad.status).toBe(400);
    expect((await api('PUT', `/api/v1/repos/${owner.tenant}/${protectedRepo}/protections/-x`, { token: owner.token, body: {} })).status).toBe(400);
  });
});

test('push option ci.skip lands the push without a pipeline', async () => {
  await writeFiles(work, { '.dotgit/pipeline.yml': 'jobs:\n  j:\n    steps:\n      - run: echo hi\n' });
  await git(['add', '-A'], work);
  await git(['commit', '-qm', 'pipeline'], work);
  const push = await git(['push', '-o', 'ci.skip', url(), 'main'], work);
  expect(push.code).toBe(0);
  expect(push.stderr).toContain('dotgit: ci.skip: no pipeline started');
  expect(runIdsFrom(push.stderr)).toEqual([]);
});

describe('bad input at the git endpoints: clear 4xx, nothing written, nothing crashes', () => {
  const gw = () => platformInfo().gatewayUrl;
  const auth = () => ({ authorization: `Bearer ${owner.token}` });

  test.each([
    ['..', 'x'],
    ['%2e%2e', 'x'],
    ['-rf', 'x'],
    ['.hidden', 'x'],
    [owner?.tenant ?? 'acme', '-x'],
    ['acme', 'x'.repeat(101)],
    ['acme', 'wеb'],
  ])('owner %s / repo %s is refused', async (o, r) => {
    const res = await fetch(`${gw()}/${o}/${encodeURIComponent(r)}.git/info/refs?service=git-upload-pack`, { headers: auth() });
    expect([400, 404]).toContain(res.status);
  });

  test('absolute and traversal paths never reach a repository', async () => {
    for (const p of ['/%2F%2Fetc/passwd.git/info/refs', `/${owner.tenant}/..%2F..%2Fx.git/info/refs`, '/a/b/c.git/info/refs']) {
      const res = await fetch(`${gw()}${p}?service=git-upload-pack`, { headers: auth() });
      expect([400, 404]).toContain(res.status);
    }
  });

  test('Git-Protocol values outside the allowed form are 400', async () => {
    const res = await fetch(`${cloneUrl(owner.tenant, repo)}/info/refs?service=git-upload-pack`, {
      headers: { ...auth(), 'git-protocol': 'version=2;rm -rf /' },
    });
    expect(res.status).toBe(400);
    expect((await res.json()).error.message).toContain('Git-Protocol');
  });

  test('garbage and truncated pkt-lines get a 400 that says why; the server keeps serving', async () => {
    for (const body of ['zzzz garbage', '0032want 1234', '00']) {
      const res = await fetch(`${cloneUrl(owner.tenant, repo)}/git-upload-pack`, {
        method: 'POST',
        headers: { ...auth(), 'content-type': 'application/x-git-upload-pack-request' },
        body,
      });
      expect(res.status).toBe(400);
      expect((await res.json()).error.message).toMatch(/upload-pack refused the request/);
    }
    expect((await git(['ls-remote', url()])).code).toBe(0);
  });

  test('a corrupt pack is refused and writes nothing', async () => {
    const before = (await git(['ls-remote', url()])).stdout;
    const head = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
    const pkt = (s: string) => (s.length + 4).toString(16).padStart(4, '0') + s;
    const cmd = pkt(`${head} ${'1'.repeat(40)} refs/heads/corrupt\0report-status\n`) + '0000';
    const body = Buffer.concat([Buffer.from(cmd), Buffer.from('PACK\0\0\0\x02\0\0\0\x01garbage-not-a-pack')]);
    const res = await fetch(`${cloneUrl(owner.tenant, repo)}/git-receive-pack`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/x-git-receive-pack-request' },
      body,
    });
    const text = res.status === 200 ? await res.text() : '';
    expect(res.status === 400 || /unpack (?!ok)/.test(text)).toBe(true);
    expect((await git(['ls-remote', url()])).stdout).toBe(before);
  });

  test('a push to a repository that does not exist is 404; a branch beginning with "-" is refused', async () => {
    const missing = await git(['push', cloneUrl(owner.tenant, 'does-not-exist', owner.token), 'main'], work);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/404|not found/i);
    const dash = await git(['push', url(), 'main:refs/heads/-evil'], work);
    expect(dash.code).not.toBe(0);
    expect(dash.stderr).toContain('ref name components may not begin with "-"');
  });
});
