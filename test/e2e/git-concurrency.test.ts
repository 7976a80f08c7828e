import path from 'node:path';
import { api, createTenantWithAdmin, uniqueName } from '../helpers/api-client';
import { cloneUrl, git, localRepo, tempDir, writeFiles } from '../helpers/git';

// 50 pushes to one branch from separate clones, with clones running alongside: every push either
// lands or is refused as non-fast-forward, every accepted commit is reachable, fsck is clean, and
// readers are not held up by the write lock.

test('50 concurrent pushes to one branch, with concurrent clones', async () => {
  const owner = await createTenantWithAdmin();
  const repo = uniqueName('busy');
  await api('POST', '/api/v1/repos', { token: owner.token, body: { owner: owner.tenant, name: repo } });
  const url = cloneUrl(owner.tenant, repo, owner.token);
  const seed = await localRepo({ 'seed.txt': 'seed\n' });
  expect((await git(['push', url, 'main'], seed)).code).toBe(0);

  const clones = await Promise.all(
    Array.from({ length: 50 }, async (_, i) => {
      const dir = path.join(tempDir(), `c${i}`);
      expect((await git(['clone', '-q', url, dir])).code).toBe(0);
      await writeFiles(dir, { [`file-${i}.txt`]: `${i}\n` });
      await git(['add', '-A'], dir);
      await git(['commit', '-qm', `commit ${i}`], dir);
      return { dir, sha: (await git(['rev-parse', 'HEAD'], dir)).stdout.trim() };
    }),
  );

  const readerTimes: number[] = [];
  let pushing = true;
  const readers = (async () => {
    while (pushing) {
      const started = Date.now();
      const dir = path.join(tempDir(), 'reader');
      const r = await git(['clone', '-q', url, dir]);
      expect(r.code).toBe(0);
      readerTimes.push(Date.now() - started);
    }
  })();
  const results = await Promise.all(clones.map(({ dir }) => git(['push', url, 'main'], dir)));
  pushing = false;
  await readers;

  const accepted = clones.filter((_, i) => results[i].code === 0);
  const refused = results.filter((r) => r.code !== 0);
  expect(accepted.length).toBeGreaterThanOrEqual(1);
  for (const r of refused) expect(r.stderr).toMatch(/non-fast-forward|fetch first|rejected/);
  expect(accepted.length + refused.length).toBe(50);

  const check = path.join(tempDir(), 'check');
  expect((await git(['clone', '-q', url, check])).code).toBe(0);
  for (const { sha } of accepted) expect((await git(['merge-base', '--is-ancestor', sha, 'HEAD'], check)).code).toBe(0);
  expect((await git(['fsck', '--full', '--strict'], check)).code).toBe(0);
  // Readers ran while the pushes held the write lock.
  expect(readerTimes.length).toBeGreaterThan(0);
  console.log(`concurrent pushes: ${accepted.length} accepted, ${refused.length} refused as non-fast-forward; ` +
    `${readerTimes.length} clones alongside, max ${Math.max(...readerTimes)} ms`);
}, 300_000);
