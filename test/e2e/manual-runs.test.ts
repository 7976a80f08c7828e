import { api, createPrivateRepo, createTenantWithAdmin, waitForRun, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo } from '../helpers/git';

// Run creation through the API (protocol translation at the edge): 202 Accepted with the run's
// tracking id at once; the run itself follows through the same outbox and relay as pushes.

let owner: TenantFixture;
let repo: string;
let commit: string;

beforeAll(async () => {
  owner = await createTenantWithAdmin();
  repo = await createPrivateRepo(owner, 'man');
  // Push filters exclude main, so the push itself starts nothing; a manual run ignores the filters.
  const work = await localRepo({ '.dotgit/pipeline.yml': 'on:\n  push:\n    branches: [release]\njobs:\n  hello:\n    steps:\n      - run: echo "manual run of $DOTGIT_REF"\n' });
  expect((await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work)).code).toBe(0);
  commit = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
});

test('POST …/runs answers 202 with the run id and links; the run then succeeds', async () => {
  const r = await api('POST', `/api/v1/repos/${owner.tenant}/${repo}/runs`, { token: owner.token, body: { ref: 'main' } });
  expect(r.status).toBe(202);
  expect(r.body).toMatchObject({ status: 'queued', ref: 'refs/heads/main', commit });
  expect(r.body.id).toMatch(new RegExp(`^pipeline:${owner.tenant}:${repo}:manual-`));
  expect(r.headers.get('location')).toBe(r.body.links.self);
  // Readable at once: the row is written before the answer.
  expect((await api('GET', r.body.links.self, { token: owner.token })).status).toBe(200);
  const run = await waitForRun(r.body.id, owner.token);
  expect(run.status).toBe('success');
  const logs = await api('GET', `${r.body.links.self}/logs`, { token: owner.token });
  expect(logs.text).toContain('manual run of refs/heads/main');
});

test('bad run requests get clear 4xx answers', async () => {
  const post = (body: unknown, token = owner.token) => api('POST', `/api/v1/repos/${owner.tenant}/${repo}/runs`, { token, body });
  const noRef = await post({});
  expect(noRef.status).toBe(400);
  expect(noRef.body.error.message).toMatch(/ref must be/);
  const unknown = await post({ ref: 'nope' });
  expect(unknown.status).toBe(404);
  expect(unknown.body.error.message).toMatch(/not found/);
  const reader = await api<{ token: string }>('POST', '/api/v1/tokens', { token: owner.token, body: { scopes: ['read'] } });
  expect((await post({ ref: 'main' }, reader.body.token)).status).toBe(403);
  const stranger = await createTenantWithAdmin();
  expect((await post({ ref: 'main' }, stranger.token)).status).toBe(404);
});

test('a burst of runs queued at once, more than one relay batch, all start and succeed', async () => {
  // The relay claims 20 outbox rows at a time and starts them together: every run of the burst
  // must get its workflow, none lost or started twice.
  const burst = 25;
  const created = await Promise.all(Array.from({ length: burst }, () => api('POST', `/api/v1/repos/${owner.tenant}/${repo}/runs`, { token: owner.token, body: { ref: 'main' } })));
  expect(created.map((r) => r.status)).toEqual(Array(burst).fill(202));
  const ids = created.map((r) => r.body.id as string);
  expect(new Set(ids).size).toBe(burst);
  const runs = await Promise.all(ids.map((id) => waitForRun(id, owner.token, 240_000)));
  expect(runs.map((r) => r.status)).toEqual(Array(burst).fill('success'));
  // One execution per run: each ran its one step once.
  expect(runs.every((r) => r.steps.length === 1 && r.steps[0].status === 'success')).toBe(true);
}, 300_000);
