import { platformInfo } from '../harness/platform-info';
import { api, createPrivateRepo, createTenantWithAdmin, waitForRun, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom, writeFiles } from '../helpers/git';

// Hostile pipeline files on the real platform (issue 10, defects 2 and 9): the push is accepted
// and prints its run, and the run fails within seconds with a message naming the line and the
// problem — never a 500 from the git-server, never a run left queued while an activity retries.

let owner: TenantFixture;
let repo: string;
let work: string;

/** A run that ends this fast did not wait on activity retries (those took 7.5 minutes). */
const FAST_MS = 30_000;

/** The billion-laughs bomb: nine aliases per level, nine levels (9^9 nodes once expanded). */
function aliasBomb(): string {
  const lines = ['x0: &a0 "lol"'];
  for (let i = 1; i <= 9; i++) lines.push(`x${i}: &a${i} [${Array(9).fill(`*a${i - 1}`).join(', ')}]`);
  return `${lines.join('\n')}\njobs:\n  a:\n    steps: [{run: echo never}]\n`;
}

beforeAll(async () => {
  owner = await createTenantWithAdmin();
  repo = await createPrivateRepo(owner, 'badyaml');
  work = await localRepo({ 'README.md': 'x\n' });
});

/** Commits `yaml` as the pipeline file on a new branch and pushes it; answers the push's one run id. */
async function pushPipeline(branch: string, yaml: string): Promise<string> {
  await git(['checkout', '-q', '-B', branch], work);
  await writeFiles(work, { '.dotgit/pipeline.yml': yaml });
  await git(['add', '-A'], work);
  await git(['commit', '-qm', branch], work);
  const push = await git(['push', cloneUrl(owner.tenant, repo, owner.token), branch], work);
  expect(push.stderr).not.toMatch(/could not check this push/);
  expect(push.code).toBe(0);
  const ids = runIdsFrom(push.stderr);
  expect(ids).toHaveLength(1);
  return ids[0];
}

async function expectFastFailure(id: string, started: number, message: RegExp): Promise<void> {
  const run = await waitForRun(id, owner.token, FAST_MS);
  expect(Date.now() - started).toBeLessThan(FAST_MS);
  expect(run.status).toBe('failure');
  expect(run.message).toMatch(message);
  expect(run.steps).toEqual([]);
}

test('an alias bomb: the push prints its run, which fails in seconds naming the line; a manual run of the ref likewise', async () => {
  const started = Date.now();
  const id = await pushPipeline('bomb', aliasBomb());
  const expected = /^\.dotgit\/pipeline\.yml:\d+:\d+: .*aliases expand the file past 512 KiB/;
  await expectFastFailure(id, started, expected);
  const line = Number(/pipeline\.yml:(\d+):/.exec((await api('GET', `/api/v1/runs/${encodeURIComponent(id)}`, { token: owner.token })).body.message)?.[1]);
  expect(line).toBeGreaterThan(1);
  expect(line).toBeLessThanOrEqual(10);

  const manualStarted = Date.now();
  const manual = await api('POST', `/api/v1/repos/${owner.tenant}/${repo}/runs`, { token: owner.token, body: { ref: 'bomb' } });
  expect(manual.status).toBe(202);
  await expectFastFailure(manual.body.id, manualStarted, expected);
});

test('an undefined alias: the run fails in seconds naming the alias and its line; a manual run likewise', async () => {
  const started = Date.now();
  const id = await pushPipeline('undefined-alias', 'jobs:\n  a:\n    steps:\n      - run: *nope\n');
  const expected = /^\.dotgit\/pipeline\.yml:4:14: jobs\.a\.steps\.0\.run: alias \*nope has no anchor &nope before it$/;
  await expectFastFailure(id, started, expected);
  const manualStarted = Date.now();
  const manual = await api('POST', `/api/v1/repos/${owner.tenant}/${repo}/runs`, { token: owner.token, body: { ref: 'undefined-alias' } });
  expect(manual.status).toBe(202);
  await expectFastFailure(manual.body.id, manualStarted, expected);
});

test.each([
  ['a job named like a JavaScript built-in', 'jobs:\n  build:\n    steps: [{run: echo ok}]\n  constructor:\n    steps: [{run: echo ok}]\n', /:4:3: jobs\.constructor: .*reserved/],
  ['a job named __proto__', 'jobs:\n  __proto__:\n    steps: [{run: echo ok}]\n', /:2:3: jobs\.__proto__: .*reserved/],
  ['a NUL in a command', 'jobs:\n  a:\n    steps:\n      - run: "echo safe\\0; rm -rf /"\n', /:4:14: jobs\.a\.steps\.0\.run: control character U\+0000/],
  ['a zero timeout', 'jobs:\n  a:\n    steps:\n      - run: echo x\n        timeout: 0s\n', /:5:18: jobs\.a\.steps\.0\.timeout: at least 1s/],
  ['nesting too deep', `jobs:\n  a:\n    steps: [{run: echo x}]\nx: ${'['.repeat(20_000)}${']'.repeat(20_000)}\n`, /:4:\d+: the file nests too deeply \(at most 32 levels\)/],
  ['a second YAML document', 'jobs:\n  a:\n    steps: [{run: echo x}]\n---\njobs: {}\n', /:4:1: only one YAML document/],
  ['a file over 256 KiB', `${'# padding padding padding padding padding padding padding padding\n'.repeat(5000)}jobs:\n  a:\n    steps: [{run: echo x}]\n`, /:1:1: .*bytes; at most 262144 are allowed/],
])('%s: the run fails in seconds naming the line', async (_case, yaml, message) => {
  const started = Date.now();
  const id = await pushPipeline(`case-${Math.random().toString(36).slice(2, 8)}`, yaml);
  await expectFastFailure(id, started, new RegExp(`^\\.dotgit/pipeline\\.yml${message.source}`));
});

test('every service still answers after the hostile files', async () => {
  const health = await fetch(`${platformInfo().gatewayUrl}/healthz`);
  expect(health.status).toBe(200);
});
