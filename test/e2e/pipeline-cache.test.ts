import { runDotgit } from '../helpers/cli';
import { api, createTenantWithAdmin, waitForRun, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom, writeFiles } from '../helpers/git';

// Issue 17 item 3 on real parts (push, Temporal, runsc, the object store): the first run misses and
// saves a cache of a few thousand files; a run of another branch with the same lock file restores
// them from the default branch's cache (GitHub's scoping) without building them; the API lists,
// shows and deletes it; a cache path that escapes the workspace fails the run with line and problem.

const FILES = 3000;
const PIPELINE = `
jobs:
  deps:
    cache:
      key: "deps-\${{ hashFiles('lock.txt') }}"
      paths: [vendor]
      restore-keys: [deps-]
    steps:
      - name: install
        run: |
          if [ -d vendor ]; then
            set -- vendor/*/*
            echo "vendor restored: $# files"
          else
            mkdir -p $(seq -f 'vendor/d%g' 0 $((${FILES} / 100 - 1)))
            i=0
            while [ $i -lt ${FILES} ]; do
              echo "package $i" > vendor/d$((i / 100))/f$i.txt
              i=$((i + 1))
            done
            set -- vendor/*/*
            echo "vendor built: $# files"
          fi
      - name: use
        run: cat vendor/d29/f2999.txt
`;

let owner: TenantFixture;
const REPO = 'cached';

beforeAll(async () => {
  owner = await createTenantWithAdmin();
  const created = await api('POST', '/api/v1/repos', { token: owner.token, body: { owner: owner.tenant, name: REPO, visibility: 'private' } });
  expect(created.status).toBe(201);
});

const log = async (runId: string, job: string, step: string) => {
  const res = await api('GET', `/api/v1/runs/${encodeURIComponent(runId)}/logs?job=${job}&step=${step}`, { token: owner.token });
  expect(res.status).toBe(200);
  return res.text;
};
/** The `dotgit` command with the owner's token. */
const cli = (args: string[]) => runDotgit(args, owner.token);
const seconds = (s: { startedAt: string; finishedAt: string }) => (Date.parse(s.finishedAt) - Date.parse(s.startedAt)) / 1000;

async function pushed(work: string, branch: string): Promise<any> {
  const push = await git(['push', cloneUrl(owner.tenant, REPO, owner.token), `HEAD:refs/heads/${branch}`], work);
  expect(push.code).toBe(0);
  const [runId] = runIdsFrom(push.stderr);
  return waitForRun(runId, owner.token, 240_000);
}

test('a miss saves the cache; a run of another branch restores it from the default branch; list, view, delete', async () => {
  const work = await localRepo({ '.dotgit/pipeline.yml': PIPELINE, 'lock.txt': 'left-pad@1.3.0\n' });
  const cold = await pushed(work, 'main');
  expect(cold.status).toBe('success');
  const coldLog = await log(cold.id, 'deps', 'install');
  expect(coldLog).toContain('dotgit: cache not found for key deps-');
  expect(coldLog).toContain(`vendor built: ${FILES} files`);
  expect(await log(cold.id, 'deps', 'use')).toMatch(/dotgit: cache saved under key deps-[0-9a-f]{64}, \d+ bytes/);

  const listed = await api('GET', `/api/v1/repos/${owner.tenant}/${REPO}/caches`, { token: owner.token });
  expect(listed.status).toBe(200);
  expect(listed.body.caches).toHaveLength(1);
  const [cache] = listed.body.caches;
  expect(cache).toMatchObject({ ref: 'refs/heads/main', runId: cold.id, job: 'deps' });
  expect(cache.key).toMatch(/^deps-[0-9a-f]{64}$/);
  expect(cache.size).toBeGreaterThan(1000);
  expect(listed.body.totalBytes).toBe(cache.size);

  // Another branch, same lock file: its own ref has no cache; the default branch's is restored.
  await writeFiles(work, { 'README.md': 'a change that is not in the key\n' });
  await git(['add', '-A'], work);
  await git(['commit', '-q', '-m', 'second'], work);
  const warm = await pushed(work, 'feature');
  expect(warm.status).toBe('success');
  const warmLog = await log(warm.id, 'deps', 'install');
  expect(warmLog).toContain(`dotgit: cache restored from key ${cache.key} (refs/heads/main)`);
  expect(warmLog).toContain(`vendor restored: ${FILES} files`);
  expect(warmLog).not.toContain('vendor built');
  expect(await log(warm.id, 'deps', 'use')).toContain('package 2999');
  const install = (run: { steps: { job: string; name: string; startedAt: string; finishedAt: string }[] }) => run.steps.find((s) => s.name === 'install')!;
  // Measured, not asserted (no timing assertions): BENCHMARKS.md has the benchmark.
  console.log(`pipeline cache: install step cold ${seconds(install(cold)).toFixed(2)} s, warm ${seconds(install(warm)).toFixed(2)} s (${FILES} files)`);

  const viewed = await api('GET', `/api/v1/repos/${owner.tenant}/${REPO}/caches/${cache.id}`, { token: owner.token });
  expect(viewed.status).toBe(200);
  expect(viewed.body).toMatchObject({ id: cache.id, key: cache.key });
  // Restoring from main's cache on a branch saved a cache of the branch's own.
  const byRef = await api('GET', `/api/v1/repos/${owner.tenant}/${REPO}/caches?ref=refs/heads/feature`, { token: owner.token });
  expect(byRef.body.caches.map((c: { ref: string }) => c.ref)).toEqual(['refs/heads/feature']);

  // Another tenant sees nothing of it.
  const stranger = await createTenantWithAdmin();
  expect((await api('GET', `/api/v1/repos/${owner.tenant}/${REPO}/caches`, { token: stranger.token })).status).toBe(404);
  expect((await api('DELETE', `/api/v1/repos/${owner.tenant}/${REPO}/caches/${cache.id}`, { token: stranger.token })).status).toBe(404);

  // The command lists and deletes them too.
  const listedByCli = await cli(['cache', 'list', `${owner.tenant}/${REPO}`, '--ref', 'refs/heads/main', '--json']);
  expect(listedByCli.code).toBe(0);
  expect(JSON.parse(listedByCli.stdout).caches.map((c: { id: number }) => c.id)).toEqual([cache.id]);
  const viewedByCli = await cli(['cache', 'view', `${owner.tenant}/${REPO}`, String(cache.id), '--json']);
  expect(viewedByCli.code).toBe(0);
  expect(JSON.parse(viewedByCli.stdout)).toMatchObject({ id: cache.id, key: cache.key, ref: 'refs/heads/main' });
  const deleted = await cli(['cache', 'delete', `${owner.tenant}/${REPO}`, String(cache.id)]);
  expect({ code: deleted.code, stdout: deleted.stdout.trim() }).toEqual({ code: 0, stdout: `cache ${cache.id} deleted from ${owner.tenant}/${REPO}` });
  expect((await api('GET', `/api/v1/repos/${owner.tenant}/${REPO}/caches/${cache.id}`, { token: owner.token })).status).toBe(404);
  const after = await api('GET', `/api/v1/repos/${owner.tenant}/${REPO}/caches?ref=refs/heads/main`, { token: owner.token });
  expect(after.body.caches).toEqual([]);
  expect((await api('DELETE', `/api/v1/repos/${owner.tenant}/${REPO}/caches/${cache.id}`, { token: owner.token })).status).toBe(404);
}, 420_000);

test('a cache path escaping the workspace fails the run with the line and the problem', async () => {
  const bad = `
jobs:
  deps:
    cache:
      key: deps
      paths:
        - vendor
        - ../../etc
    steps:
      - run: "true"
`;
  const work = await localRepo({ '.dotgit/pipeline.yml': bad });
  const run = await pushed(work, 'bad-path');
  expect(run.status).toBe('failure');
  expect(run.message).toBe('.dotgit/pipeline.yml:8:11: jobs.deps.cache.paths.1: cache path "../../etc" escapes the workspace through ".."');
});
