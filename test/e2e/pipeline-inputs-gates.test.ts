import { api, createPrivateRepo, createTenantWithAdmin, waitForRun, type TenantFixture } from '../helpers/api-client';
import { runDotgit } from '../helpers/cli';
import { cloneUrl, git, localRepo, runIdsFrom, writeFiles } from '../helpers/git';

// Issue 17 items 6 (manual inputs) and 9 (deploy gates), through a real push, the API and the
// platform's workflows.

let owner: TenantFixture;

beforeAll(async () => {
  owner = await createTenantWithAdmin();
});

const INPUTS_FILE = `on:
  manual:
    inputs:
      level: { type: choice, options: [low, high], default: low }
      count: { type: number, required: true }
      dry: { type: boolean }
      note: { description: free text }
jobs:
  show:
    steps:
      - run: echo "level=\${{ inputs.level }} count=\${{ inputs.count }} env=$INPUT_LEVEL/$INPUT_COUNT/$INPUT_DRY note=[$INPUT_NOTE]"
`;

test('manual inputs: valid values reach the steps as ${{ inputs.x }} and INPUT_*; invalid ones are 400 naming the input', async () => {
  const repo = await createPrivateRepo(owner, 'inputs');
  const work = await localRepo({ '.dotgit/pipeline.yml': INPUTS_FILE });
  const pushed = await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work);
  expect(pushed.code).toBe(0);
  // on: lists manual but not push: the push starts nothing.
  expect(runIdsFrom(pushed.stderr)).toEqual([]);
  const post = (body: unknown) => api('POST', `/api/v1/repos/${owner.tenant}/${repo}/runs`, { token: owner.token, body });

  const r = await post({ ref: 'main', inputs: { level: 'high', count: '3', dry: true } });
  expect(r.status).toBe(202);
  const run = await waitForRun(r.body.id, owner.token);
  expect(run).toMatchObject({ status: 'success', event: 'manual', inputs: { level: 'high', count: '3', dry: 'true', note: '' } });
  const logs = await api('GET', `/api/v1/runs/${encodeURIComponent(r.body.id)}/logs`, { token: owner.token });
  expect(logs.text).toContain('level=high count=3 env=high/3/true note=[]');

  // The same through the command: --input name=value, repeatable; a malformed one is a usage error.
  const cli = await runDotgit(['run', 'start', `${owner.tenant}/${repo}`, '--ref', 'main', '--input', 'count=5', '--input', 'level=high', '--wait', '--json'], owner.token);
  expect(cli.code).toBe(0);
  expect(JSON.parse(cli.stdout)).toMatchObject({ status: 'success', event: 'manual', inputs: { count: '5', level: 'high', dry: 'false' } });
  expect((await runDotgit(['run', 'start', `${owner.tenant}/${repo}`, '--ref', 'main', '--input', 'count'], owner.token)).code).toBe(2);
  const refusedCli = await runDotgit(['run', 'start', `${owner.tenant}/${repo}`, '--ref', 'main', '--input', 'count=x'], owner.token);
  expect(refusedCli.code).toBe(1);
  expect(refusedCli.stderr).toContain('input "count" must be a number');

  const refusals: [unknown, RegExp][] = [
    [{ ref: 'main', inputs: {} }, /input "count" is required/],
    [{ ref: 'main', inputs: { count: 'many' } }, /input "count" must be a number/],
    [{ ref: 'main', inputs: { count: 1, level: 'medium' } }, /input "level" must be one of low, high/],
    [{ ref: 'main', inputs: { count: 1, dry: 'maybe' } }, /input "dry" must be true or false/],
    [{ ref: 'main', inputs: { count: 1, colour: 'red' } }, /input "colour" is not declared/],
    [{ ref: 'main', inputs: { count: { nested: 1 } } }, /inputs: each value must be a string, a number or a boolean/],
  ];
  for (const [body, message] of refusals) {
    const refused = await post(body);
    expect({ status: refused.status, message: refused.body.error.message }).toEqual({ status: 400, message: expect.stringMatching(message) });
  }
}, 180_000);

test('deploy gate: an environment with requires: [pipeline] refuses (409) a commit without a green run and takes one with', async () => {
  const repo = await createPrivateRepo(owner, 'gate');
  const file = `jobs:
  test:
    steps:
      - run: test -f ok
environments:
  production:
    requires: [pipeline]
    deploy: [{ run: "true" }]
  staging:
    deploy: [{ run: "true" }]
`;
  const work = await localRepo({ '.dotgit/pipeline.yml': file });
  const url = cloneUrl(owner.tenant, repo, owner.token);
  const deploy = (environment: string) => api('POST', `/api/v1/repos/${owner.tenant}/${repo}/deploys`, { token: owner.token, body: { ref: 'main', environment } });

  // A commit pushed with ci.skip has no run at all.
  expect((await git(['push', '-o', 'ci.skip', url, 'main'], work)).code).toBe(0);
  const none = await deploy('production');
  expect(none.status).toBe(409);
  expect(none.body.error.message).toMatch(/environment "production" requires a successful pipeline run of the commit .*: it has no pipeline run/);
  // An environment without the gate takes it.
  expect((await deploy('staging')).status).toBe(202);

  // A red run: still refused, naming the run and its status.
  await writeFiles(work, { 'README.md': 'red\n' });
  await git(['add', '-A'], work);
  await git(['commit', '-qm', 'red'], work);
  const red = await git(['push', url, 'main'], work);
  const [redRun] = runIdsFrom(red.stderr);
  expect((await waitForRun(redRun, owner.token)).status).toBe('failure');
  const refused = await deploy('production');
  expect(refused.status).toBe(409);
  expect(refused.body.error.message).toContain(`its latest run ${redRun} is failure`);
  // The command says the same and exits 1 (a request that failed).
  const refusedCli = await runDotgit(['deploy', 'create', `${owner.tenant}/${repo}`, 'production', '--ref', 'main'], owner.token);
  expect(refusedCli.code).toBe(1);
  expect(refusedCli.stderr).toContain(`its latest run ${redRun} is failure`);

  // A green run: the deploy is taken and succeeds.
  await writeFiles(work, { ok: 'yes\n' });
  await git(['add', '-A'], work);
  await git(['commit', '-qm', 'green'], work);
  const green = await git(['push', url, 'main'], work);
  const [greenRun] = runIdsFrom(green.stderr);
  expect((await waitForRun(greenRun, owner.token)).status).toBe('success');
  const taken = await deploy('production');
  expect(taken.status).toBe(202);
  const deadline = Date.now() + 120_000;
  let status = '';
  while (Date.now() < deadline && !['success', 'failure', 'rolled_back', 'cancelled'].includes(status)) {
    status = (await api('GET', taken.body.links.self, { token: owner.token })).body.status;
    if (status !== 'success') await new Promise((r) => setTimeout(r, 500));
  }
  expect(status).toBe('success');
}, 240_000);
