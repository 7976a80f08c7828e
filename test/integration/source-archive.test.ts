import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { platformInfo } from '../harness/platform-info';
import { createPrivateRepo, createTenantWithAdmin, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, tempDir, writeFiles } from '../helpers/git';
import { mintJobCredential } from '../../core/job-credential';
import { signServiceToken } from '../../core/internal-identity';

// ADR 0014 "Workspace sources over the network": the platform's real git-server serves a commit's
// files as a tar to whoever holds a job credential for exactly that repository and commit.

const info = platformInfo();
const base = () => `http://127.0.0.1:${info.gitPort}/internal/repos/archive`;
let owner: TenantFixture;
let repo: string;
let other: string;
let first: string;
let second: string;

async function archive(query: Record<string, string>, credential?: string): Promise<Response> {
  return fetch(`${base()}?${new URLSearchParams(query)}`, { headers: credential ? { authorization: `Bearer ${credential}` } : {} });
}

async function message(res: Response): Promise<string> {
  return ((await res.json()) as { error: { message: string } }).error.message;
}

beforeAll(async () => {
  owner = await createTenantWithAdmin();
  repo = await createPrivateRepo(owner, 'src');
  other = await createPrivateRepo(owner, 'src-other');
  const work = await localRepo({ 'README.md': 'hello\n', 'src/app.sh': 'echo app\n' });
  first = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
  await writeFiles(work, { 'second.txt': 'two\n' });
  await git(['add', '-A'], work);
  await git(['commit', '-q', '-m', 'second'], work);
  second = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
  const pushed = await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work);
  expect(pushed.code).toBe(0);
  expect((await git(['push', cloneUrl(owner.tenant, other, owner.token), 'main'], work)).code).toBe(0);
});

test('a valid credential gets a tar of the commit’s files', async () => {
  const credential = await mintJobCredential(info.internalSecret, { repo: `${owner.tenant}/${repo}`, commit: first });
  const res = await archive({ owner: owner.tenant, name: repo, commit: first }, credential);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('application/x-tar');
  const file = path.join(tempDir('archive-'), 'src.tar');
  writeFileSync(file, Buffer.from(await res.arrayBuffer()));
  // The first commit's files, not the second's, and no .git.
  expect(execFileSync('tar', ['-tf', file], { encoding: 'utf8' }).split('\n').filter(Boolean).sort()).toEqual(['README.md', 'src/', 'src/app.sh']);
  expect(execFileSync('tar', ['-xOf', file, 'src/app.sh'], { encoding: 'utf8' })).toBe('echo app\n');
});

test('a credential for another repository is refused with 403 naming both', async () => {
  const credential = await mintJobCredential(info.internalSecret, { repo: `${owner.tenant}/${repo}`, commit: first });
  const res = await archive({ owner: owner.tenant, name: other, commit: first }, credential);
  expect(res.status).toBe(403);
  expect(await message(res)).toBe(`job credential is for ${owner.tenant}/${repo}, not ${owner.tenant}/${other}`);
});

test('a credential for another commit is refused with 403', async () => {
  const credential = await mintJobCredential(info.internalSecret, { repo: `${owner.tenant}/${repo}`, commit: first });
  const res = await archive({ owner: owner.tenant, name: repo, commit: second }, credential);
  expect(res.status).toBe(403);
  expect(await message(res)).toContain(`is for commit ${first}, not ${second}`);
});

test('no, expired, forged or other kinds of credentials get 401', async () => {
  const query = { owner: owner.tenant, name: repo, commit: first };
  const source = { repo: `${owner.tenant}/${repo}`, commit: first };
  const none = await archive(query);
  expect(none.status).toBe(401);
  expect(await message(none)).toMatch(/job credential is required/);
  const expired = await archive(query, await mintJobCredential(info.internalSecret, source, -60));
  expect(expired.status).toBe(401);
  expect(await message(expired)).toMatch(/invalid job credential: "exp" claim timestamp check failed/);
  const forged = await archive(query, await mintJobCredential('x'.repeat(48), source));
  expect(forged.status).toBe(401);
  // A service token, signed with the same internal secret, is not a job credential.
  expect((await archive(query, await signServiceToken(info.internalSecret, 'api', { repo: source.repo, commit: first }))).status).toBe(401);
});

test('an unknown commit is 404; bad names or commit ids are 400', async () => {
  const unknown = 'e'.repeat(40);
  const res = await archive({ owner: owner.tenant, name: repo, commit: unknown }, await mintJobCredential(info.internalSecret, { repo: `${owner.tenant}/${repo}`, commit: unknown }));
  expect(res.status).toBe(404);
  expect(await message(res)).toBe(`commit ${unknown} not found in ${owner.tenant}/${repo}`);

  const credential = await mintJobCredential(info.internalSecret, { repo: `${owner.tenant}/${repo}`, commit: first });
  for (const [query, why] of [
    [{ owner: owner.tenant, name: repo, commit: 'HEAD' }, /commit must be a full commit id/],
    [{ owner: owner.tenant, name: repo, commit: first.slice(0, 12) }, /commit must be a full commit id/],
    [{ owner: owner.tenant, name: repo }, /commit must be a full commit id/],
    [{ owner: '../etc', name: repo, commit: first }, /owner/],
    [{ owner: owner.tenant, name: '', commit: first }, /name/],
  ] as const) {
    const bad = await archive(query as Record<string, string>, credential);
    expect(bad.status).toBe(400);
    expect(await message(bad)).toMatch(why);
  }
});
