import { platformInfo } from '../harness/platform-info';
import { api, createPrivateRepo, createTenantWithAdmin, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, writeFiles } from '../helpers/git';
import { readSse } from '../helpers/sse';

// Deploys on real parts (CONTRACT `POST …/deploys`): 202 + id, one deploy per environment at a
// time in order, the approval gate, cancel, and rollback to the last good deploy on failure.

const PIPELINE = `
on:
  push:
    branches: [no-pipeline-runs-here]
jobs:
  noop:
    steps: [{ run: "true" }]
environments:
  staging:
    deploy:
      - name: ship
        run: echo "deploying $DOTGIT_COMMIT to staging"
  slow:
    deploy:
      - name: ship
        run: sleep 2
  production:
    approval: true
    deploy:
      - name: ship
        run: echo "shipping $DOTGIT_COMMIT"
  canary:
    deploy:
      - name: ship
        run: test ! -f broken
    rollback:
      - name: restore
        run: echo "rolling back to $DOTGIT_ROLLBACK_TO from $DOTGIT_FAILED_COMMIT at $DOTGIT_COMMIT"
`;

let owner: TenantFixture;
let repo: string;
let work: string;
let good: string;

const TERMINAL = ['success', 'failure', 'rolled_back', 'rejected', 'cancelled'];

async function startDeploy(environment: string, ref = 'main', token = owner.token) {
  return api('POST', `/api/v1/repos/${owner.tenant}/${repo}/deploys`, { token, body: { ref, environment } });
}

async function waitForDeploy(id: string, until: (d: any) => boolean = (d) => TERMINAL.includes(d.status), timeoutMs = 90_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  let last: any;
  while (Date.now() < deadline) {
    last = await api('GET', `/api/v1/deploys/${encodeURIComponent(id)}`, { token: owner.token });
    if (last.status === 200 && until(last.body)) return last.body;
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`deploy ${id} did not get there: ${last?.text}`);
}

beforeAll(async () => {
  owner = await createTenantWithAdmin();
  repo = await createPrivateRepo(owner, 'dep');
  work = await localRepo({ '.dotgit/pipeline.yml': PIPELINE });
  expect((await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work)).code).toBe(0);
  good = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
});

test('a deploy is accepted with 202 and its id, runs its steps and succeeds', async () => {
  const r = await startDeploy('staging');
  expect(r.status).toBe(202);
  expect(r.body).toMatchObject({ status: 'queued', links: { self: `/api/v1/deploys/${encodeURIComponent(r.body.id)}` } });
  expect(r.headers.get('location')).toBe(r.body.links.self);
  expect(r.body.id).toMatch(new RegExp(`^deploy:${owner.tenant}:${repo}:staging:`));
  const d = await waitForDeploy(r.body.id);
  expect(d).toMatchObject({ status: 'success', commit: good, ref: 'refs/heads/main', environment: 'staging', requestedBy: owner.username });
  expect(d.steps).toEqual([expect.objectContaining({ job: 'deploy', name: 'ship', status: 'success', exitCode: 0 })]);
  // The event feed replays the deploy: its log line and its terminal status.
  const events = await readSse(`${platformInfo().gatewayUrl}${r.body.links.events}`, { token: owner.token });
  expect(events.events.some((e) => e.event === 'log' && e.data.line === `deploying ${good} to staging`)).toBe(true);
  expect(events.events[events.events.length - 1]).toMatchObject({ event: 'status', data: { status: 'success' } });
  const history = await api('GET', `/api/v1/repos/${owner.tenant}/${repo}/deploys?environment=staging`, { token: owner.token });
  expect(history.body.deploys.map((x: { id: string }) => x.id)).toContain(r.body.id);
});

test('deploys to one environment run one at a time, in the order they were asked for', async () => {
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await startDeploy('slow');
    expect(r.status).toBe(202);
    ids.push(r.body.id);
  }
  const done = await Promise.all(ids.map((id) => waitForDeploy(id)));
  expect(done.map((d) => d.status)).toEqual(['success', 'success', 'success']);
  for (let i = 1; i < done.length; i++) {
    // Each started only after the one before it had finished.
    expect(Date.parse(done[i].startedAt)).toBeGreaterThanOrEqual(Date.parse(done[i - 1].finishedAt));
  }
});

test('approval gate: a deploy waits, an approval records who and lets it run; a rejection ends it', async () => {
  const approver = await api<{ token: string }>('POST', '/api/v1/tokens', { token: owner.token, body: { scopes: ['read', 'write'] } });
  const first = await startDeploy('production');
  const waiting = await waitForDeploy(first.body.id, (d) => d.status === 'waiting_approval');
  expect(waiting.steps[0].status).toBe('queued');
  // Issue 17 item 8: the deploy says why it waits.
  expect(waiting.pending).toEqual({ reason: 'approval', message: 'waiting for approval' });
  const reader = await api<{ token: string }>('POST', '/api/v1/tokens', { token: owner.token, body: { scopes: ['read'] } });
  expect((await api('POST', `/api/v1/deploys/${encodeURIComponent(first.body.id)}/approve`, { token: reader.body.token })).status).toBe(403);
  const approved = await api('POST', `/api/v1/deploys/${encodeURIComponent(first.body.id)}/approve`, { token: approver.body.token, body: { comment: 'ship it' } });
  expect(approved.status).toBe(200);
  const d = await waitForDeploy(first.body.id);
  expect(d).toMatchObject({ status: 'success', decidedBy: owner.username, pending: null });
  // Approving again is a conflict: the deploy is not waiting any more.
  const again = await api('POST', `/api/v1/deploys/${encodeURIComponent(first.body.id)}/approve`, { token: owner.token });
  expect(again.status).toBe(409);

  const second = await startDeploy('production');
  await waitForDeploy(second.body.id, (x) => x.status === 'waiting_approval');
  expect((await api('POST', `/api/v1/deploys/${encodeURIComponent(second.body.id)}/reject`, { token: owner.token, body: { comment: 'not today' } })).status).toBe(200);
  const rejected = await waitForDeploy(second.body.id);
  expect(rejected).toMatchObject({ status: 'rejected', decidedBy: owner.username });
  expect(rejected.message).toMatch(/rejected by .*not today/);
  expect(rejected.steps[0].status).toBe('skipped');
});

test('cancel of a deploy waiting at the gate ends it and lets the next deploy of the environment go', async () => {
  const first = await startDeploy('production');
  await waitForDeploy(first.body.id, (d) => d.status === 'waiting_approval');
  const second = await startDeploy('production');
  // The second waits behind the first for the environment.
  await new Promise((r) => setTimeout(r, 1500));
  const queued = (await api<any>('GET', `/api/v1/deploys/${encodeURIComponent(second.body.id)}`, { token: owner.token })).body;
  expect(queued.status).toBe('queued');
  // Issue 17 item 8: queued behind the lock the first (at the gate) holds, and naming it.
  expect(queued.pending).toEqual({ reason: 'environment', message: `waiting for the environment lock of production held by deploy ${first.body.id}` });
  expect((await api('POST', `/api/v1/deploys/${encodeURIComponent(first.body.id)}/cancel`, { token: owner.token })).status).toBe(202);
  expect((await waitForDeploy(first.body.id)).status).toBe('cancelled');
  await waitForDeploy(second.body.id, (d) => d.status === 'waiting_approval');
  expect((await api('POST', `/api/v1/deploys/${encodeURIComponent(second.body.id)}/reject`, { token: owner.token })).status).toBe(200);
  expect((await waitForDeploy(second.body.id)).status).toBe('rejected');
});

test('a failed deploy step runs the rollback steps against the last good deploy', async () => {
  const ok = await startDeploy('canary');
  expect((await waitForDeploy(ok.body.id)).status).toBe('success');
  await writeFiles(work, { broken: 'yes\n' });
  await git(['add', '-A'], work);
  await git(['commit', '-qm', 'break canary'], work);
  expect((await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work)).code).toBe(0);
  const bad = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
  const r = await startDeploy('canary');
  const d = await waitForDeploy(r.body.id);
  expect(d).toMatchObject({ status: 'rolled_back', commit: bad, rollbackTo: good });
  expect(d.steps.map((s: { job: string; name: string; status: string }) => [s.job, s.name, s.status])).toEqual([
    ['deploy', 'ship', 'failure'],
    ['rollback', 'restore', 'success'],
  ]);
  const events = await readSse(`${platformInfo().gatewayUrl}${r.body.links.events}`, { token: owner.token });
  expect(events.events.some((e) => e.event === 'log' && e.data.line === `rolling back to ${good} from ${bad} at ${good}`)).toBe(true);
});

test('bad deploy requests get clear 4xx answers, an environment the file lacks among them', async () => {
  const bad = async (body: unknown, status: number, message: RegExp, token = owner.token) => {
    const r = await api('POST', `/api/v1/repos/${owner.tenant}/${repo}/deploys`, { token, body });
    expect(r.status).toBe(status);
    expect(r.body.error.message).toMatch(message);
  };
  await bad({ ref: 'main', environment: '../prod' }, 400, /environment must be/);
  await bad({ ref: 42, environment: 'staging' }, 400, /ref must be/);
  await bad({ ref: 'no-such-branch', environment: 'staging' }, 404, /not found/);
  await bad({ ref: '--upload-pack=x', environment: 'staging' }, 404, /not found/);
  const reader = await api<{ token: string }>('POST', '/api/v1/tokens', { token: owner.token, body: { scopes: ['read'] } });
  await bad({ ref: 'main', environment: 'staging' }, 403, /write/, reader.body.token);
  const stranger = await createTenantWithAdmin();
  await bad({ ref: 'main', environment: 'staging' }, 404, /not found/, stranger.token);
  expect((await api('GET', `/api/v1/deploys/${encodeURIComponent('deploy:nope')}`, { token: owner.token })).status).toBe(404);
  // Refused at once (issue 10), naming what the file defines, rather than accepted and failed later.
  await bad({ ref: 'main', environment: 'qa' }, 400, /defines no environment "qa"; it defines: canary, production, slow, staging/);
});
