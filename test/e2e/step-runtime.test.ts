import { platformInfo } from '../harness/platform-info';
import { api, createPrivateRepo, createTenantWithAdmin, waitForRun, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom, writeFiles } from '../helpers/git';
import { readSse } from '../helpers/sse';

// Issue 10's step-runtime defects on the real platform (worker as root, runsc, tmpfs workspaces):
// a secret across the 64 KiB line cut, a timed-out step that exits 0, and a full workspace.

let owner: TenantFixture;
let repo: string;
let work: string;

beforeAll(async () => {
  owner = await createTenantWithAdmin();
  repo = await createPrivateRepo(owner, 'steprt');
  work = await localRepo({ 'README.md': 'x\n' });
});

async function pushPipeline(yaml: string, message: string): Promise<string> {
  await writeFiles(work, { '.dotgit/pipeline.yml': yaml });
  await git(['add', '-A'], work);
  await git(['commit', '-qm', message], work);
  const push = await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work);
  expect(push.code).toBe(0);
  const ids = runIdsFrom(push.stderr);
  expect(ids).toHaveLength(1);
  return ids[0];
}

const logsOf = async (id: string, job: string, step: string) =>
  (await api('GET', `/api/v1/runs/${encodeURIComponent(id)}/logs?job=${job}&step=${step}`, { token: owner.token })).text;

test('a secret printed across the 64 KiB line cut is masked in the stored log and the live stream', async () => {
  const secret = 'tok-straddle-9f8e7d6c5b4a';
  expect((await api('PUT', `/api/v1/repos/${owner.tenant}/${repo}/secrets/STRADDLE`, { token: owner.token, body: { value: secret } })).status).toBe(204);
  const id = await pushPipeline(
    'jobs:\n  leak:\n    secrets: [STRADDLE]\n    steps:\n      - name: print\n        run: |\n' +
      `          node -e 'process.stdout.write("x".repeat(65531) + process.env.STRADDLE + "\\n")'\n`,
    'straddling secret',
  );
  const run = await waitForRun(id, owner.token);
  expect(run.status).toBe('success');
  const log = await logsOf(id, 'leak', 'print');
  expect(log).toContain('***');
  const live = await readSse(`${platformInfo().gatewayUrl}/api/v1/runs/${encodeURIComponent(id)}/events`, { token: owner.token });
  const liveText = live.events.filter((e) => e.event === 'log').map((e) => e.data.line).join('\n');
  expect(liveText).toContain('***');
  for (const text of [log, liveText]) for (const piece of ['tok-str', 'straddle-9f', '5b4a']) expect(text).not.toContain(piece);
});

test('a step that exits 0 on SIGTERM after its timeout fails (exit 124) and the next step does not run', async () => {
  const id = await pushPipeline(
    "jobs:\n  slow:\n    steps:\n      - name: wait\n        timeout: 3s\n        run: |\n          trap 'exit 0' TERM\n          echo begun\n          sleep 30 &\n          wait\n      - name: after\n        run: echo after-ran\n",
    'timeout trap',
  );
  const run = await waitForRun(id, owner.token);
  expect(run.status).toBe('failure');
  expect(run.steps).toEqual([
    expect.objectContaining({ name: 'wait', status: 'failure', exitCode: 124 }),
    expect.objectContaining({ name: 'after', status: 'skipped' }),
  ]);
  expect(await logsOf(id, 'slow', 'wait')).toContain('dotgit: step timed out');
});

test('filling the tmpfs workspace fails the step with "No space left on device", not exit 137', async () => {
  const id = await pushPipeline(
    'jobs:\n  fill:\n    steps:\n      - name: dd\n        run: dd if=/dev/zero of=big bs=1M count=2200\n',
    'fill the workspace',
  );
  const run = await waitForRun(id, owner.token);
  expect(run.status).toBe('failure');
  expect(run.steps[0].exitCode).not.toBe(137);
  expect(run.steps[0].exitCode).toBe(1);
  expect(await logsOf(id, 'fill', 'dd')).toMatch(/No space left on device/);
}, 180_000);
