import { platformInfo } from '../harness/platform-info';
import { runDotgit } from '../helpers/cli';
import { api, createTenantWithAdmin, uniqueName, waitForRun, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom } from '../helpers/git';

// Issue 17 item 5 on real parts: a run whose second job fails (a secret it checks is not set yet)
// is re-run with the CLI's `dotgit run rerun --failed-only --wait` as attempt 2: the first job is not
// run again, its artifact and output (a value made once, at random) reach the re-run job; the run
// answer shows both attempts and which attempt produced each step. Who may not re-run: 403/404.

const PIPELINE = `
jobs:
  build:
    outputs: { stamp: "\${{ steps.make.outputs.stamp }}" }
    artifacts: [out/stamp.txt]
    steps:
      - id: make
        name: make
        run: |
          mkdir -p out
          s="stamp-$(date +%s%N)-$$"
          echo "$s" > out/stamp.txt
          echo "stamp=$s" >> "$DOTGIT_OUTPUT"
  check:
    needs: [build]
    secrets: [GATE]
    steps:
      - name: gate
        run: |
          echo "got \${{ needs.build.outputs.stamp }}"
          if [ "$GATE" = open ]; then echo the-gate-let-us-through; else echo the-gate-held-us; fi
          test "$GATE" = open
`;

let owner: TenantFixture;
const REPO = 'reruns';

const cli = runDotgit;

beforeAll(async () => {
  owner = await createTenantWithAdmin();
  const created = await api('POST', '/api/v1/repos', { token: owner.token, body: { owner: owner.tenant, name: REPO, visibility: 'private' } });
  expect(created.status).toBe(201);
});

test('re-running failed jobs only: attempt 2 runs the failed job alone, reusing the artifact and output of attempt 1', async () => {
  const work = await localRepo({ '.dotgit/pipeline.yml': PIPELINE });
  const push = await git(['push', cloneUrl(owner.tenant, REPO, owner.token), 'main'], work);
  expect(push.code).toBe(0);
  const [runId] = runIdsFrom(push.stderr);
  const first = await waitForRun(runId, owner.token);
  expect(first.status).toBe('failure');
  expect(first.attempt).toBe(1);
  const path1 = `/api/v1/runs/${encodeURIComponent(runId)}`;
  const stampText = async () => (await api('GET', `${path1}/artifacts/out/stamp.txt`, { token: owner.token })).text.trim();
  const stamp = await stampText();
  expect(stamp).toMatch(/^stamp-\d+-\d+$/);
  const firstGate = await api('GET', `${path1}/logs?job=check&step=gate`, { token: owner.token });
  expect(firstGate.text).toContain(`got ${stamp}`);

  // Not allowed: a reader of the tenant (403), another tenant's admin (404, the run does not exist for them).
  const admin = platformInfo().adminToken;
  const readerName = uniqueName('reader');
  expect((await api('POST', `/api/v1/tenants/${owner.tenant}/users`, { token: admin, body: { username: readerName, role: 'reader' } })).status).toBe(201);
  const reader = await api<{ token: string }>('POST', '/api/v1/tokens', { token: admin, body: { username: readerName, scopes: ['read'] } });
  const denied = await api('POST', `${path1}/rerun`, { token: reader.body.token, body: { failedOnly: true } });
  expect(denied.status).toBe(403);
  const stranger = await createTenantWithAdmin();
  expect((await api('POST', `${path1}/rerun`, { token: stranger.token, body: { failedOnly: true } })).status).toBe(404);
  expect((await api('POST', `${path1}/rerun`, { token: owner.token, body: { failedOnly: 'yes' } })).status).toBe(400);
  expect((await api('GET', path1, { token: owner.token })).body.attempt).toBe(1);

  // The gate opens; the failed job alone runs again, through the CLI.
  expect((await api('PUT', `/api/v1/repos/${owner.tenant}/${REPO}/secrets/GATE`, { token: owner.token, body: { value: 'open' } })).status).toBeLessThan(300);
  const rerun = await cli(['run', 'rerun', runId, '--failed-only', '--wait', '--json'], owner.token);
  expect({ code: rerun.code, stderr: rerun.code === 0 ? '' : rerun.stderr }).toEqual({ code: 0, stderr: '' });
  const second = await waitForRun(runId, owner.token);
  expect(second.status).toBe('success');
  expect(second.attempt).toBe(2);
  expect(second.attempts.map((a: { attempt: number; status: string; failedOnly: boolean }) => [a.attempt, a.status, a.failedOnly])).toEqual([
    [1, 'failure', false],
    [2, 'success', true],
  ]);
  expect(second.attempts[1].requestedBy).toBe(owner.username);
  expect(second.steps.map((s: { job: string; name: string; status: string; runAttempt: number }) => `${s.job}/${s.name} ${s.status} attempt ${s.runAttempt}`)).toEqual([
    'build/make success attempt 1',
    'check/gate success attempt 2',
  ]);
  // Attempt 1 as it ended, on request.
  const asFirst = await api('GET', `${path1}?attempt=1`, { token: owner.token });
  expect(asFirst.status).toBe(200);
  expect(asFirst.body).toMatchObject({ status: 'failure', attempt: 1 });
  expect(asFirst.body.steps.map((s: { job: string; status: string }) => `${s.job} ${s.status}`)).toEqual(['build success', 'check failure']);
  expect((await api('GET', `${path1}?attempt=9`, { token: owner.token })).status).toBe(404);
  // The reused job's output reached the re-run job, and its artifact is still the run's.
  const secondGate = await api('GET', `${path1}/logs?job=check&step=gate`, { token: owner.token });
  expect(secondGate.text).toContain(`got ${stamp}`);
  // Each attempt's log through the logs route (ADR 0037): the latest by default, ?attempt=1 the first.
  expect(secondGate.text).toContain('the-gate-let-us-through');
  const firstAgain = await api('GET', `${path1}/logs?job=check&step=gate&attempt=1`, { token: owner.token });
  expect(firstAgain.status).toBe(200);
  expect(firstAgain.text).toContain('the-gate-held-us');
  expect(firstAgain.text).not.toContain('the-gate-let-us-through');
  expect((await api('GET', `${path1}/logs?job=check&step=gate&attempt=2`, { token: owner.token })).text).toContain('the-gate-let-us-through');
  expect((await api('GET', `${path1}/logs?attempt=9`, { token: owner.token })).status).toBe(404);
  expect((await api('GET', `${path1}/logs?attempt=x`, { token: owner.token })).status).toBe(400);
  // The same through the command: dotgit logs --attempt 1.
  const firstByCli = await cli(['logs', runId, '--job', 'check', '--step', 'gate', '--attempt', '1'], owner.token);
  expect(firstByCli.code).toBe(0);
  expect(firstByCli.stdout).toContain('the-gate-held-us');
  expect(firstByCli.stdout).not.toContain('the-gate-let-us-through');
  expect(await stampText()).toBe(stamp);
  expect((await api('GET', `${path1}/artifacts`, { token: owner.token })).body.artifacts.map((a: { job: string; path: string }) => `${a.job}:${a.path}`)).toEqual(['build:out/stamp.txt']);

  // Nothing failed any more: re-running failed jobs only is refused; a whole re-run runs both again.
  const nothing = await api('POST', `${path1}/rerun`, { token: owner.token, body: { failedOnly: true } });
  expect(nothing.status).toBe(409);
  const all = await api('POST', `${path1}/rerun`, { token: owner.token, body: {} });
  expect(all.status).toBe(202);
  expect(all.body).toEqual({ id: runId, attempt: 3 });
  const third = await waitForRun(runId, owner.token);
  expect(third.status).toBe('success');
  expect(third.steps.map((s: { runAttempt: number }) => s.runAttempt)).toEqual([3, 3]);
  expect(await stampText()).not.toBe(stamp);
}, 300_000);
