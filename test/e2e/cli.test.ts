import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { DotgitApiError, DotgitClient } from '../../cli/client';
import { ROOT } from '../../infra/root';
import { platformInfo } from '../harness/platform-info';
import { createTenantWithAdmin, uniqueName } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom, tempDir, writeFiles } from '../helpers/git';

// The typed SDK and the `dotgit` command against the running platform.

// Each command runs as installed (package.json bin), from a directory without .data/ and with a
// config directory of its own, so neither a developer's login nor a local admin token leaks in.
const xdg = tempDir('dotgit-cli-xdg-');
const cwd = tempDir('dotgit-cli-cwd-');

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function spawnCli(args: string[], o: { token?: string; env?: Record<string, string>; stdin?: string; onStdout?: (all: string) => void } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env, DOTGIT_URL: platformInfo().gatewayUrl, XDG_CONFIG_HOME: xdg, ...o.env };
    delete env.DOTGIT_TOKEN;
    if (o.token) env.DOTGIT_TOKEN = o.token;
    const child = spawn(process.execPath, [path.join(ROOT, 'cli', 'bin.cjs'), ...args], { cwd, env });
    child.stdin.end(o.stdin ?? '');
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
      o.onStdout?.(stdout);
    });
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function cli(args: string[], token: string, stdin = ''): Promise<CliResult> {
  return spawnCli(args, { token, stdin });
}

/** Pushes and answers the one run the push started (failing with the push's output when there is none). */
async function pushRun(work: string, tenant: string, repo: string, token: string): Promise<string> {
  const pushed = await git(['push', cloneUrl(tenant, repo, token), 'main'], work);
  const [id] = runIdsFrom(pushed.stderr);
  if (!id) throw new Error(`the push started no run (exit ${pushed.code}):\n${pushed.stderr}`);
  return id;
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

  const shown = await cli(['repo', 'show', `${tenant}/app`, '--json'], token);
  expect(shown.code).toBe(0);
  expect(JSON.parse(shown.stdout)).toEqual(expect.objectContaining({ owner: tenant, name: 'app' }));
  const bad = await cli(['repo', 'show', `${tenant}/missing`], token);
  expect(bad.code).toBe(3);
  expect(bad.stderr).toContain('404 not_found');
  const usage = await cli(['frobnicate'], token);
  expect(usage.code).toBe(2);
  expect(usage.stderr).toContain("unknown command 'frobnicate'");
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
  const approved = await cli(['deploy', 'approve', d.id, '--comment', 'ok'], token);
  expect(approved.code).toBe(0);
  const done = await ops.waitForDeploy(d.id, { intervalMs: 200, timeoutMs: 120_000 });
  expect(done).toMatchObject({ status: 'success', decidedBy: `${tenant}-ops` });
  expect((await ops.listDeploys(tenant, 'svc', 'prod')).map((x) => x.id)).toEqual([d.id]);
  const again = await ops.decideDeploy(d.id, 'approve').catch((e) => e);
  expect(again).toBeInstanceOf(DotgitApiError);
  expect(again.status).toBe(409);
});

test('logs --follow prints a line while its step still runs; run watch, --wait and --json exit 1 when the run fails', async () => {
  const { tenant, token } = await createTenantWithAdmin();
  const dev = new DotgitClient(platformInfo().gatewayUrl, token);
  await dev.createRepo(tenant, 'live');
  const work = await localRepo({
    '.dotgit/pipeline.yml':
      'jobs:\n  slow:\n    steps:\n      - name: talk\n        run: |\n          echo first-line\n          sleep 25\n          echo second-line\n          mkdir -p o && echo art > o/a.txt\n    artifacts: [o/a.txt]\n',
  });
  const id = await pushRun(work, tenant, 'live', token);

  // The moment `first-line` reaches the follower, the step is still sleeping: the run has not ended
  // and `second-line` has not been printed. Lines arrive as printed, not when the run ends. (25 s of
  // sleep leave room for the command's own start on a loaded machine: it connects after the push.)
  let atFirstLine: Promise<{ status: string; sawSecond: boolean }> | undefined;
  const followed = await spawnCli(['logs', id, '--follow'], {
    token,
    onStdout: (all) => {
      if (!atFirstLine && all.includes('first-line')) atFirstLine = dev.getRun(id).then((r) => ({ status: r.status, sawSecond: all.includes('second-line') }));
    },
  });
  expect({ code: followed.code, stderr: followed.stderr }).toEqual({ code: 0, stderr: expect.stringContaining('[1/1 steps] slow/talk success (exit 0)') });
  expect(await atFirstLine).toEqual({ status: 'running', sawSecond: false });
  expect(followed.stdout).toMatch(/slow\/talk \| first-line\n(.*\n)*slow\/talk \| second-line/);

  // Followed after the end: the whole log again, then exit 0; one step's lines alone with --job/--step.
  const watched = await spawnCli(['run', 'watch', id], { token });
  expect(watched.code).toBe(0);
  expect(watched.stdout).toContain('slow/talk | second-line');
  // dotgit's own lines after the command (here the artifact upload) are live too, as `logs` shows them.
  expect(watched.stdout).toContain('slow/talk | dotgit: uploaded artifact o/a.txt (4 bytes)');
  // The replayed events of an ended run do not count its steps down and up again.
  const counts = [...watched.stderr.matchAll(/\[(\d+)\/1 steps\]/g)].map((m) => m[1]);
  expect(counts.length).toBeGreaterThan(0);
  expect(counts.filter((n) => n !== '1')).toEqual([]);
  const oneStep = await spawnCli(['logs', id, '--follow', '--job', 'slow', '--step', 'talk'], { token });
  expect(oneStep.stdout.split('\n').filter(Boolean)).toEqual(['first-line', 'second-line', 'dotgit: uploaded artifact o/a.txt (4 bytes)']);
  const listed = await spawnCli(['run', 'list', `${tenant}/live`, '--json'], { token });
  expect(listed.code).toBe(0);
  expect(JSON.parse(listed.stdout).map((r: { id: string }) => r.id)).toEqual([id]);

  // Artifacts: listed, downloaded under --dir with their paths.
  const arts = await spawnCli(['artifacts', 'list', id, '--json'], { token });
  expect(JSON.parse(arts.stdout).map((a: { path: string }) => a.path)).toEqual(['o/a.txt']);
  const dir = tempDir('dotgit-cli-art-');
  const down = await spawnCli(['artifacts', 'download', id, '--dir', dir], { token });
  expect(down.code).toBe(0);
  expect(readFileSync(path.join(dir, 'o', 'a.txt'), 'utf8')).toBe('art\n');
  expect((await spawnCli(['artifacts', 'download', id, 'o/none.txt', '--dir', dir], { token })).code).toBe(3);

  // A failing run: every way of waiting for it exits 1, and says so.
  await writeFiles(work, { '.dotgit/pipeline.yml': 'jobs:\n  bad:\n    steps:\n      - name: boom\n        run: echo going-down; exit 3\n' });
  await git(['commit', '-qam', 'break'], work);
  const badId = await pushRun(work, tenant, 'live', token);
  const badFollow = await spawnCli(['logs', badId, '--follow', '--json'], { token });
  expect(badFollow.code).toBe(1);
  const events = badFollow.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  expect(events.find((e) => e.event === 'log')).toMatchObject({ data: { job: 'bad', step: 'boom', line: 'going-down' } });
  expect(events[events.length - 1]).toMatchObject({ event: 'status', data: { status: 'failure' } });
  const badWatch = await spawnCli(['run', 'watch', badId], { token });
  expect(badWatch.code).toBe(1);
  expect(badWatch.stderr).toContain(`run ${badId} ended failure`);
  const badWait = await spawnCli(['run', 'view', badId, '--wait', '--json'], { token });
  expect(badWait.code).toBe(1);
  expect(JSON.parse(badWait.stdout)).toMatchObject({ id: badId, status: 'failure', steps: [{ job: 'bad', name: 'boom', exitCode: 3 }] });
  expect((await spawnCli(['run', 'view', id, '--wait'], { token })).code).toBe(0);
  expect((await spawnCli(['run', 'watch', 'pipeline:nope:nope:0'], { token })).code).toBe(3);
});

test('login stores URL and token 0600 and later commands use them; tokens, repos, secrets and deploys through the command', async () => {
  const { tenant, token } = await createTenantWithAdmin();
  const noEnv = { DOTGIT_URL: '' };
  const refused = await spawnCli(['login', '--url', platformInfo().gatewayUrl, '--token', 'dg_not-a-token'], { env: noEnv });
  expect(refused.code).toBe(4);
  const file = path.join(xdg, 'dotgit', 'config.json');
  expect(existsSync(file)).toBe(false);
  const login = await spawnCli(['login', '--url', platformInfo().gatewayUrl], { env: noEnv, stdin: `${token}\n` });
  expect(login.code).toBe(0);
  expect(statSync(file).mode & 0o777).toBe(0o600);
  expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ url: platformInfo().gatewayUrl, token });

  // From here on no DOTGIT_URL / DOTGIT_TOKEN: the config file is what the commands use.
  const created = await spawnCli(['repo', 'create', `${tenant}/made`, '--json'], { env: noEnv });
  expect(created.code).toBe(0);
  expect(JSON.parse(created.stdout)).toMatchObject({ owner: tenant, name: 'made', visibility: 'private' });
  // The same creation again by its creator is a resend (ADR 0027): the repository, exit 0; other settings: 409, exit 1.
  expect((await spawnCli(['repo', 'create', `${tenant}/made`], { env: noEnv })).code).toBe(0);
  expect((await spawnCli(['repo', 'create', `${tenant}/made`, '--public'], { env: noEnv })).code).toBe(1); // 409: exists
  const viewed = await spawnCli(['repo', 'view', `${tenant}/made`], { env: noEnv });
  expect(viewed.stdout).toContain(`name: made`);

  // Tokens: a read token is refused a write (exit 4, "not allowed"); a revoked one stops at once.
  const made = await spawnCli(['token', 'create', '--scopes', 'read', '--json'], { env: noEnv });
  expect(made.code).toBe(0);
  const readToken = JSON.parse(made.stdout) as { id: number; token: string };
  const denied = await spawnCli(['repo', 'create', `${tenant}/nope`], { token: readToken.token });
  expect(denied.code).toBe(4);
  expect((await spawnCli(['repo', 'view', `${tenant}/made`], { token: readToken.token })).code).toBe(0);
  const revoked = await spawnCli(['token', 'revoke', String(readToken.id)], { env: noEnv });
  expect(revoked.code).toBe(0);
  expect(revoked.stdout).toContain(`token ${readToken.id} revoked`);
  expect((await spawnCli(['repo', 'view', `${tenant}/made`], { token: readToken.token })).code).toBe(4);

  // A secret says what it set; --json answers what was set (never the value).
  const secret = await spawnCli(['secret', 'set', `${tenant}/made`, 'GREETING'], { env: noEnv, stdin: 'hi\n' });
  expect(secret.code).toBe(0);
  expect(secret.stdout).toContain(`secret GREETING set for ${tenant}/made`);
  const secretJson = await spawnCli(['secret', 'set', `${tenant}/made`, 'OTHER', '--environment', 'prod', '--json'], { env: noEnv, stdin: 'x' });
  expect(JSON.parse(secretJson.stdout)).toEqual({ repo: `${tenant}/made`, name: 'OTHER', environment: 'prod' });
  const secrets = await spawnCli(['secret', 'list', `${tenant}/made`, '--json'], { env: noEnv });
  expect(JSON.parse(secrets.stdout).map((x: { name: string; environment: string | null }) => [x.name, x.environment ?? ''])).toEqual(
    expect.arrayContaining([['GREETING', ''], ['OTHER', 'prod']]),
  );
  expect((await spawnCli(['secret', 'delete', `${tenant}/made`, 'OTHER', '--environment', 'prod'], { env: noEnv })).code).toBe(0);
  expect((await spawnCli(['secret', 'list', `${tenant}/made`], { env: noEnv })).stdout).not.toContain('OTHER');

  // A deploy whose step fails (and has no rollback): --wait and watch exit 1.
  const work = await localRepo({
    '.dotgit/pipeline.yml': 'on:\n  push:\n    branches: [none]\njobs:\n  j:\n    steps: [{ run: "true" }]\nenvironments:\n  prod:\n    deploy:\n      - name: ship\n        run: echo shipping; exit 1\n',
  });
  expect((await git(['push', cloneUrl(tenant, 'made', token), 'main', 'main:trunk'], work)).code).toBe(0);

  // The default branch: shown, changed (PATCH), refused for a branch that does not exist (404 → 3).
  expect((await spawnCli(['repo', 'default-branch', `${tenant}/made`], { env: noEnv })).stdout).toBe('main\n');
  const changed = await spawnCli(['repo', 'default-branch', `${tenant}/made`, 'trunk', '--json'], { env: noEnv });
  expect(changed.code).toBe(0);
  expect(JSON.parse(changed.stdout)).toMatchObject({ owner: tenant, name: 'made', defaultBranch: 'trunk' });
  expect((await spawnCli(['repo', 'default-branch', `${tenant}/made`], { env: noEnv })).stdout).toBe('trunk\n');
  expect((await spawnCli(['repo', 'default-branch', `${tenant}/made`, 'no-such-branch'], { env: noEnv })).code).toBe(3);
  const deployed = await spawnCli(['deploy', 'create', `${tenant}/made`, 'prod', '--ref', 'main', '--wait', '--json'], { env: noEnv });
  expect(deployed.code).toBe(1);
  const d = JSON.parse(deployed.stdout) as { id: string; status: string };
  expect(d.status).toBe('failure');
  const watched = await spawnCli(['deploy', 'watch', d.id], { env: noEnv });
  expect(watched.code).toBe(1);
  expect(watched.stdout).toContain('shipping');
  const listed = await spawnCli(['deploy', 'list', `${tenant}/made`, '--json'], { env: noEnv });
  expect(JSON.parse(listed.stdout).map((x: { id: string }) => x.id)).toEqual([d.id]);

  const logout = await spawnCli(['logout'], { env: noEnv });
  expect(logout.code).toBe(0);
  expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ url: platformInfo().gatewayUrl });
  expect((await spawnCli(['repo', 'view', `${tenant}/made`], { env: noEnv })).code).toBe(3); // anonymous: a private repository is not found
});

test('the installed command answers --help, and usage errors exit 2, as a process', async () => {
  const help = await spawnCli(['run', 'watch', '--help']);
  expect(help.code).toBe(0);
  expect(help.stdout).toContain('Usage: dotgit run watch');
  const usage = await spawnCli(['run', 'watch']);
  expect(usage.code).toBe(2);
  expect(usage.stderr).toContain("missing required argument 'id'");
});

test('audit verify: intact → exit 0 (--json the answer), a link altered in SQL → exit 1 naming it, not a platform admin → exit 4; audit list pages', async () => {
  const admin = platformInfo().adminToken;
  const { tenant, token } = await createTenantWithAdmin();
  const intact = await spawnCli(['audit', 'verify', '--json'], { token: admin });
  expect(intact.code).toBe(0);
  expect(JSON.parse(intact.stdout)).toMatchObject({ ok: true, checked: expect.any(Number) });
  const human = await spawnCli(['audit', 'verify', '--tenant', tenant], { token: admin });
  expect(human.stdout).toMatch(/^audit log intact: \d+ links checked/);
  expect((await spawnCli(['audit', 'verify'], { token })).code).toBe(4);

  const listed = await spawnCli(['audit', 'list', '--tenant', tenant, '--limit', '1', '--json'], { token });
  expect(listed.code).toBe(0);
  const page = JSON.parse(listed.stdout);
  expect(page.events).toHaveLength(1);
  expect(page.events[0].tenant).toBe(tenant);
  expect((await spawnCli(['audit', 'list', '--after', 'x'], { token })).code).toBe(2);

  // As an attacker with the database would (the append-only trigger out of the way): one link altered.
  const db = new pg.Client({ connectionString: platformInfo().databaseUrl });
  await db.connect();
  try {
    const row = (await db.query('SELECT a.* FROM audit_log a JOIN tenants t ON t.id = a.tenant_id WHERE t.name = $1 AND a.seq IS NOT NULL ORDER BY a.seq DESC LIMIT 1', [tenant])).rows[0];
    await db.query('SET session_replication_role = replica');
    await db.query(`UPDATE audit_log SET target = 'nothing to see here' WHERE id = $1`, [row.id]);
    try {
      const broken = await spawnCli(['audit', 'verify', '--tenant', tenant], { token: admin });
      expect(broken.code).toBe(1);
      expect(broken.stdout).toContain(`audit log BROKEN: shard ${row.shard}, seq ${row.seq} (event ${row.id})`);
    } finally {
      await db.query('UPDATE audit_log SET target = $2 WHERE id = $1', [row.id, row.target]);
    }
  } finally {
    await db.end();
  }
  expect((await spawnCli(['audit', 'verify', '--tenant', tenant], { token: admin })).code).toBe(0);
});
