import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Client, Connection, ScheduleNotFoundError } from '@temporalio/client';
import { createDb } from '../../core/db';
import { api, createPrivateRepo, createTenantWithAdmin, waitForRun, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, runIdsFrom, tempDir, writeFiles } from '../helpers/git';
import { platformInfo } from '../harness/platform-info';

// Issue 15 item 5: the first branch pushed to an empty repository becomes its default (HEAD), so a
// clone checks out files; PATCH …/repos/{owner}/{repo} {defaultBranch} moves it; answers show it.

let acme: TenantFixture;

beforeAll(async () => {
  acme = await createTenantWithAdmin();
});

/** A local repository whose first commit is on `branch`. */
async function repoOn(branch: string, files: Record<string, string>): Promise<string> {
  const dir = tempDir();
  await git(['init', '-q', '-b', branch], dir);
  await writeFiles(dir, files);
  await git(['add', '-A'], dir);
  expect((await git(['commit', '-q', '-m', `on ${branch}`], dir)).code).toBe(0);
  return dir;
}

async function cloneOf(repo: string): Promise<{ dir: string; stderr: string; branch: string }> {
  const dir = path.join(tempDir(), 'clone');
  const c = await git(['clone', cloneUrl(acme.tenant, repo, acme.token), dir]);
  expect(c.code).toBe(0);
  const branch = (await git(['rev-parse', '--abbrev-ref', 'HEAD'], dir)).stdout.trim();
  return { dir, stderr: c.stderr, branch };
}

test('a first push of master makes master the default: a clone checks out its files, the answers say master', async () => {
  const repo = await createPrivateRepo(acme, 'master');
  expect((await api('GET', `/api/v1/repos/${acme.tenant}/${repo}`, { token: acme.token })).body.defaultBranch).toBe('main');
  const work = await repoOn('master', { 'README.md': 'from master\n' });
  expect((await git(['push', cloneUrl(acme.tenant, repo, acme.token), 'master'], work)).code).toBe(0);

  const clone = await cloneOf(repo);
  expect(clone.stderr).not.toMatch(/nonexistent ref/);
  expect(clone.branch).toBe('master');
  expect(await fs.readFile(path.join(clone.dir, 'README.md'), 'utf8')).toBe('from master\n');
  expect((await api('GET', `/api/v1/repos/${acme.tenant}/${repo}`, { token: acme.token })).body.defaultBranch).toBe('master');

  // A later branch does not take it over.
  await git(['checkout', '-q', '-b', 'feature'], work);
  expect((await git(['push', cloneUrl(acme.tenant, repo, acme.token), 'feature'], work)).code).toBe(0);
  expect((await cloneOf(repo)).branch).toBe('master');
});

test('PATCH defaultBranch moves HEAD: a clone checks out the new default; an unknown branch is 404, a bad body 400 naming the field', async () => {
  const repo = await createPrivateRepo(acme, 'patch');
  const work = await repoOn('main', { 'which.txt': 'main\n' });
  await git(['checkout', '-q', '-b', 'release/2.x'], work);
  await writeFiles(work, { 'which.txt': 'release\n' });
  await git(['commit', '-qam', 'release'], work);
  expect((await git(['push', cloneUrl(acme.tenant, repo, acme.token), 'main', 'release/2.x'], work)).code).toBe(0);
  expect((await cloneOf(repo)).branch).toBe('main');

  const base = `/api/v1/repos/${acme.tenant}/${repo}`;
  const patched = await api('PATCH', base, { token: acme.token, body: { defaultBranch: 'release/2.x' } });
  expect(patched.status).toBe(200);
  expect(patched.body).toMatchObject({ owner: acme.tenant, name: repo, defaultBranch: 'release/2.x' });
  expect((await api('GET', base, { token: acme.token })).body.defaultBranch).toBe('release/2.x');
  const clone = await cloneOf(repo);
  expect(clone.branch).toBe('release/2.x');
  expect(await fs.readFile(path.join(clone.dir, 'which.txt'), 'utf8')).toBe('release\n');

  const missing = await api('PATCH', base, { token: acme.token, body: { defaultBranch: 'nope' } });
  expect(missing.status).toBe(404);
  expect(missing.body.error.message).toMatch(/branch "nope" not found/);
  for (const body of [{ defaultBranch: 5 }, { defaultBranch: '-x' }, { defaultBranch: '' }]) {
    const bad = await api('PATCH', base, { token: acme.token, body });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/defaultBranch/);
  }
  const unknown = await api('PATCH', base, { token: acme.token, body: { default_branch: 'main' } });
  expect(unknown.status).toBe(400);
  expect(unknown.body.error.message).toMatch(/default_branch/);
  // Nothing changed by the refused requests.
  expect((await api('GET', base, { token: acme.token })).body.defaultBranch).toBe('release/2.x');
});

test('changing the default branch needs admin access to the repository', async () => {
  const repo = await createPrivateRepo(acme, 'authz');
  const work = await repoOn('main', { a: 'a\n' });
  expect((await git(['push', cloneUrl(acme.tenant, repo, acme.token), 'main'], work)).code).toBe(0);
  const other = await createTenantWithAdmin();
  const base = `/api/v1/repos/${acme.tenant}/${repo}`;
  // Another tenant cannot see the repository: 404, as for reads.
  expect((await api('PATCH', base, { token: other.token, body: { defaultBranch: 'main' } })).status).toBe(404);
  expect((await api('PATCH', base, { body: { defaultBranch: 'main' } })).status).toBe(401);
});

test("a repository whose default branch is master: push filters name it, its schedules and scheduled runs are master's, and follow a PATCH", async () => {
  const repo = await createPrivateRepo(acme, 'sched-master');
  const url = cloneUrl(acme.tenant, repo, acme.token);
  const file = (cron: string) => `on:\n  push:\n    branches: [master]\n  schedule: [{ cron: "${cron}" }]\njobs:\n  tick:\n    steps:\n      - run: echo "run of $DOTGIT_REF"\n`;
  const work = await repoOn('master', { '.dotgit/pipeline.yml': file('0 3 * * *') });
  const pushed = await git(['push', url, 'master'], work);
  expect(pushed.code).toBe(0);
  expect(runIdsFrom(pushed.stderr)).toHaveLength(1); // branches: [master] matched
  // Another branch with its own schedule: no run (the filter), no schedule change (not the default).
  await git(['checkout', '-q', '-b', 'trunk'], work);
  await writeFiles(work, { '.dotgit/pipeline.yml': file('15 4 * * *') });
  await git(['commit', '-qam', 'trunk'], work);
  const side = await git(['push', url, 'trunk'], work);
  expect(runIdsFrom(side.stderr)).toEqual([]);

  const info = platformInfo();
  const db = createDb(info.databaseUrl, 1);
  const connection = await Connection.connect({ address: info.temporalAddress });
  try {
    const client = new Client({ connection, namespace: info.namespace });
    const repoId = Number((await db.query('SELECT r.id FROM repos r JOIN tenants t ON t.id = r.tenant_id WHERE t.name = $1 AND r.name = $2', [acme.tenant, repo])).rows[0].id);
    const recorded = async () => (await db.query('SELECT ref, crons FROM repo_schedules WHERE repo_id = $1', [repoId])).rows[0];
    expect(await recorded()).toEqual({ ref: 'refs/heads/master', crons: ['0 3 * * *'] });

    // The schedule's firing runs master (its relay creates the Temporal Schedule from the row).
    const schedule = client.schedule.getHandle(`dotgit-sched-${repoId}-0`);
    for (let i = 0; i < 120; i++) {
      try {
        await schedule.describe();
        break;
      } catch (err) {
        if (!(err instanceof ScheduleNotFoundError)) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    await schedule.trigger();
    let run: { id: string } | undefined;
    for (let i = 0; i < 120 && !run; i++) {
      const list = await api('GET', `/api/v1/repos/${acme.tenant}/${repo}/runs`, { token: acme.token });
      run = (list.body.runs as { id: string; event: string }[]).find((r) => r.event === 'schedule');
      if (!run) await new Promise((r) => setTimeout(r, 500));
    }
    expect(run).toBeDefined();
    expect(await waitForRun(run!.id, acme.token)).toMatchObject({ status: 'success', event: 'schedule', ref: 'refs/heads/master' });

    // PATCH: the new default's file declares the schedules, and their runs are of it.
    expect((await api('PATCH', `/api/v1/repos/${acme.tenant}/${repo}`, { token: acme.token, body: { defaultBranch: 'trunk' } })).status).toBe(200);
    expect(await recorded()).toEqual({ ref: 'refs/heads/trunk', crons: ['15 4 * * *'] });
  } finally {
    await connection.close();
    await db.end();
  }
}, 180_000);
