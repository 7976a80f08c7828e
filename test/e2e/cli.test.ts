import { spawn } from 'node:child_process';
import path from 'node:path';
import { DotgitApiError, DotgitClient } from '../../cli/client';
import { ROOT } from '../../infra/root';
import { platformInfo } from '../harness/platform-info';
import { uniqueName } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom } from '../helpers/git';

// The typed SDK and the `dotgit` command against the running platform.

function cli(args: string[], token: string, stdin = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'cli', 'dotgit.ts'), ...args], {
      cwd: ROOT,
      env: { ...process.env, DOTGIT_URL: platformInfo().gatewayUrl, DOTGIT_TOKEN: token },
    });
    child.stdin.end(stdin);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('the SDK drives the whole flow: tenant, user, token, repo, run, logs, artifacts', async () => {
  const admin = new DotgitClient(platformInfo().gatewayUrl, platformInfo().adminToken);
  const tenant = uniqueName('sdk');
  await admin.createTenant(tenant);
  await admin.createUser(tenant, `${tenant}-dev`, 'member');
  const { token } = await admin.createToken(['read', 'write'], { username: `${tenant}-dev` });
  const dev = new DotgitClient(platformInfo().gatewayUrl, token);
  const repo = await dev.createRepo(tenant, 'app');
  expect(repo.visibility).toBe('private');

  const work = await localRepo({
    '.dotgit/pipeline.yml': 'jobs:\n  one:\n    steps:\n      - name: s\n        run: mkdir -p o && echo sdk-line | tee o/a.txt\n    artifacts: [o/a.txt]\n',
  });
  const push = await git(['push', cloneUrl(tenant, 'app', token), 'main'], work);
  const [id] = runIdsFrom(push.stderr);
  const run = await dev.waitForRun(id, { intervalMs: 200, timeoutMs: 120_000 });
  expect(run.status).toBe('success');
  expect(await dev.logs(id, 'one', 's')).toContain('sdk-line');
  expect((await dev.artifacts(id)).map((a) => a.path)).toEqual(['o/a.txt']);
  expect((await dev.artifact(id, 'o/a.txt')).toString()).toBe('sdk-line\n');
  expect((await dev.listRuns(tenant, 'app', { status: 'success' })).map((r) => r.id)).toEqual([id]);

  const err = await dev.getRepo(tenant, 'missing').catch((e) => e);
  expect(err).toBeInstanceOf(DotgitApiError);
  expect(err.status).toBe(404);
  expect(err.code).toBe('not_found');

  const shown = await cli(['repo', 'show', `${tenant}/app`], token);
  expect(shown.code).toBe(0);
  expect(JSON.parse(shown.stdout)).toEqual(expect.objectContaining({ owner: tenant, name: 'app' }));
  const bad = await cli(['repo', 'show', `${tenant}/missing`], token);
  expect(bad.code).toBe(1);
  expect(bad.stderr).toContain('404 not_found');
  const usage = await cli(['frobnicate'], token);
  expect(usage.code).toBe(2);
  expect(usage.stderr).toContain('usage:');
});

test('the SDK and the command drive secrets, manual runs and a deploy through its approval gate', async () => {
  const admin = new DotgitClient(platformInfo().gatewayUrl, platformInfo().adminToken);
  const tenant = uniqueName('sdkd');
  await admin.createTenant(tenant);
  await admin.createUser(tenant, `${tenant}-ops`, 'admin');
  const { token } = await admin.createToken(['read', 'write'], { username: `${tenant}-ops` });
  const ops = new DotgitClient(platformInfo().gatewayUrl, token);
  await ops.createRepo(tenant, 'svc');
  const work = await localRepo({
    '.dotgit/pipeline.yml':
      'on:\n  push:\n    branches: [none]\njobs:\n  j:\n    secrets: [GREETING]\n    steps:\n      - run: test "$GREETING" = "hello there"\nenvironments:\n  prod:\n    approval: true\n    deploy:\n      - name: ship\n        run: echo shipped\n',
  });
  expect((await git(['push', cloneUrl(tenant, 'svc', token), 'main'], work)).code).toBe(0);

  // The secret through the command (value from stdin), then a run by hand that checks it.
  const set = await cli(['secret', 'set', `${tenant}/svc`, 'GREETING'], token, 'hello there\n');
  expect(set.code).toBe(0);
  const started = await ops.startRun(tenant, 'svc', 'main');
  expect((await ops.waitForRun(started.id, { intervalMs: 200, timeoutMs: 120_000 })).status).toBe('success');

  const d = await ops.deploy(tenant, 'svc', 'prod', 'main');
  expect(d.status).toBe('queued');
  expect((await ops.waitForDeploy(d.id, { intervalMs: 200, timeoutMs: 60_000, until: (x) => x.status === 'waiting_approval' })).status).toBe('waiting_approval');
  const approved = await cli(['approve', d.id, '--comment', 'ok'], token);
  expect(approved.code).toBe(0);
  const done = await ops.waitForDeploy(d.id, { intervalMs: 200, timeoutMs: 120_000 });
  expect(done).toMatchObject({ status: 'success', decidedBy: `${tenant}-ops` });
  expect((await ops.listDeploys(tenant, 'svc', 'prod')).map((x) => x.id)).toEqual([d.id]);
  const again = await ops.decideDeploy(d.id, 'approve').catch((e) => e);
  expect(again).toBeInstanceOf(DotgitApiError);
  expect(again.status).toBe(409);
});
