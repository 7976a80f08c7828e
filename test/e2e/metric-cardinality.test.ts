import { randomBytes } from 'node:crypto';
import client from 'prom-client';
import { createOrchestrationActivities } from '../../activities/orchestration-activities';
import { observeStepFinished, observeStepStart } from '../../activities/run-metrics';
import { createDb } from '../../core/db';
import { insertQueuedRun, markStepRunning, recordStepResult } from '../../core/stores/runs-store';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, waitForRun, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom } from '../helpers/git';
import { scrape } from '../helpers/prom';

// Issue 14: bounded label cardinality. A realistic workload (pushes to several repositories, their
// runs, API calls with ids in their paths, clones, requests for things that do not exist) is run
// twice with fresh names and ids; then no label of any series on any process's /metrics holds a
// name or id the workload used (route classes and templates only), and the second round added no
// series of its own: the series count does not grow with repositories, runs or commits.
//
// To 100 runs (ADR 0028): 94 more, recorded through the real recording path in this process (the
// orchestration activities the pipeline workflow calls, startRun and finishRun, on the platform's
// Postgres, and the step rows' store functions feeding run-metrics as the sandbox activity does),
// with every status; the run and step families then hold at most one series per status, whatever
// the number of runs. Through the whole platform those 94 runs took two minutes on the shared
// 2-core machine (as many pushes, outbox rows and workflows), for nothing the two rounds above do
// not already show: the same label code, with new ids.

const info = platformInfo();
const targets: Record<string, string> = {
  gateway: `${info.gatewayUrl}/metrics`,
  api: `http://127.0.0.1:${info.apiPort}/metrics`,
  'git-server': `http://127.0.0.1:${info.gitPort}/metrics`,
  worker: `http://127.0.0.1:${info.workerPort}/metrics`,
};

const PIPELINE = 'jobs:\n  build:\n    steps:\n      - name: hello\n        run: echo "built $DOTGIT_COMMIT"\n';
const REPOS_PER_ROUND = 3;

/**
 * Every series of every process, by process: name and labels as written, a histogram's buckets,
 * sum and count as one series. Node's own families (nodejs_*, process_*: bounded by the runtime,
 * e.g. one per GC kind once it has run) are left out.
 */
async function series(): Promise<Map<string, Set<string>>> {
  const out = new Map<string, Set<string>>();
  for (const [name, url] of Object.entries(targets)) {
    const lines = (await scrape(url)).text.split('\n').filter((l) => l && !l.startsWith('#') && !/^(nodejs|process)_/.test(l));
    const keys = lines.map((l) =>
      l
        .replace(/\s+\S+(\s+\d+)?$/, '')
        .replace(/^(\w+?)_(bucket|sum|count)\{/, '$1{')
        .replace(/le="[^"]*",?/, ''),
    );
    out.set(name, new Set(keys));
  }
  return out;
}

/** One round: repositories with a push each (their runs), API reads by id, a clone, misses. Answers every name and id it used. */
async function workload(owner: TenantFixture): Promise<string[]> {
  const used: string[] = [owner.tenant, owner.username];
  for (let i = 0; i < REPOS_PER_ROUND; i++) {
    const name = `card-${randomBytes(5).toString('hex')}`;
    used.push(name);
    expect((await api('POST', '/api/v1/repos', { token: owner.token, body: { owner: owner.tenant, name, visibility: 'private' } })).status).toBe(201);
    const work = await localRepo({ '.dotgit/pipeline.yml': PIPELINE, [`${name}.txt`]: name });
    const commit = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
    used.push(commit, commit.slice(0, 12));
    const push = await git(['push', cloneUrl(owner.tenant, name, owner.token), 'main'], work);
    expect(push.code).toBe(0);
    const [runId] = runIdsFrom(push.stderr);
    used.push(runId);
    await waitForRun(runId, owner.token);
    // Reads with ids in their paths and queries.
    expect((await api('GET', `/api/v1/runs/${runId}`, { token: owner.token })).status).toBe(200);
    expect((await api('GET', `/api/v1/runs/${runId}/logs?job=build&step=hello`, { token: owner.token })).status).toBe(200);
    expect((await api('GET', `/api/v1/repos/${owner.tenant}/${name}`, { token: owner.token })).status).toBe(200);
    expect((await api('GET', `/api/v1/repos/${owner.tenant}/${name}/runs?commit=${commit}`, { token: owner.token })).status).toBe(200);
    expect((await git(['clone', '-q', cloneUrl(owner.tenant, name, owner.token), `${work}-clone`], work)).code).toBe(0);
  }
  // Misses: unknown runs, repositories and paths nothing routes.
  const missing = randomBytes(6).toString('hex');
  used.push(missing);
  expect((await api('GET', `/api/v1/runs/${missing}`, { token: owner.token })).status).toBeGreaterThanOrEqual(400);
  expect((await api('GET', `/api/v1/repos/${owner.tenant}/${missing}`, { token: owner.token })).status).toBe(404);
  expect((await api('GET', `/${owner.tenant}/${missing}.git/info/refs?service=git-upload-pack`, { token: owner.token })).status).toBeGreaterThanOrEqual(400);
  expect((await api('GET', `/nothing-${missing}/here`)).status).toBe(404);
  return used;
}

test('after two rounds of pushes, runs and API calls, no label holds a name or id, and the second round added no series', async () => {
  await series(); // scraping is a request too: its own series exist before the rounds
  const first = await createTenantWithAdmin();
  const usedFirst = await workload(first);
  const afterFirst = await series();
  const second = await createTenantWithAdmin();
  const usedSecond = await workload(second);
  const afterSecond = await series();

  // No label value holds a name or id of either round.
  const used = [...usedFirst, ...usedSecond].filter((u) => u.length >= 8);
  const leaks: string[] = [];
  for (const [process, all] of afterSecond) for (const s of all) if (used.some((u) => s.includes(u))) leaks.push(`${process}: ${s}`);
  expect(leaks).toEqual([]);

  // Route labels are classes or templates: every path segment a literal word, a :parameter or a wildcard.
  for (const [process, all] of afterSecond) {
    for (const s of all) {
      const route = /route="([^"]*)"/.exec(s)?.[1];
      if (route === undefined || !route.startsWith('/')) continue;
      expect([process, route.split('/').filter((seg) => seg && !/^[:*{(]|^[a-z.][a-z0-9._-]*$/.test(seg))]).toEqual([process, []]);
    }
  }

  // The second round (new tenant, repositories, runs, commits) brought no series of its own. A
  // background workflow (housekeeping, backups, a schedule firing) may add some while this runs:
  // a new workflow or activity type's SDK series, a status code seen for the first time. A label
  // that grows with ids would add several per repository, run and request of the round.
  const grown: string[] = [];
  let total = 0;
  for (const [process, all] of afterSecond) {
    total += all.size;
    for (const s of all) if (!afterFirst.get(process)!.has(s)) grown.push(`${process}: ${s}`);
  }
  expect(grown.length <= 30 ? [] : grown).toEqual([]);
  // And a bound on the whole: the four processes' series (a histogram's label set counted once).
  expect(total).toBeLessThan(1500);
  console.log(`metric series after the workload: ${total} (${[...afterSecond].map(([p, s]) => `${p} ${s.size}`).join(', ')}); new in round 2: ${grown.length}`);
});

/** The label sets of the run and step families in this process's registry (a histogram's buckets counted once). */
async function runSeries(): Promise<Set<string>> {
  const out = new Set<string>();
  for (const m of await client.register.getMetricsAsJSON()) {
    if (!/^dotgit_(runs?|steps?|push_to_step)_/.test(m.name)) continue;
    for (const v of (m as { values: Array<{ labels: Record<string, unknown> }> }).values) {
      const { le: _le, ...labels } = v.labels;
      out.add(`${m.name.replace(/_(bucket|sum|count)$/, '')}${JSON.stringify(labels)}`);
    }
  }
  return out;
}

test('94 more runs (to 100) through the real recording path: the run and step families hold one series per status, none grows with runs', async () => {
  const owner = await createTenantWithAdmin();
  const name = `card-rec-${randomBytes(4).toString('hex')}`;
  expect((await api('POST', '/api/v1/repos', { token: owner.token, body: { owner: owner.tenant, name, visibility: 'private' } })).status).toBe(201);
  const db = createDb(info.databaseUrl, 2);
  try {
    const ids = (await db.query<{ id: string; tenant_id: string }>(`SELECT r.id, r.tenant_id FROM repos r JOIN tenants t ON t.id = r.tenant_id WHERE t.name = $1 AND r.name = $2`, [owner.tenant, name])).rows[0];
    expect(ids).toBeDefined();
    const tenantId = Number(ids.tenant_id);
    const repoId = Number(ids.id);
    const activities = createOrchestrationActivities({ db, gitUpstreams: [], internalSecret: '' });
    const statuses = ['success', 'failure', 'cancelled'] as const;
    const used: string[] = [];
    let half = new Set<string>();
    for (let i = 0; i < 94; i++) {
      const runId = `pipeline:${owner.tenant}:${name}:${randomBytes(8).toString('hex')}`;
      const commit = randomBytes(20).toString('hex');
      used.push(runId, commit);
      await insertQueuedRun(db, { tenantId, runId, repoId, ref: `refs/heads/b${i}`, commit });
      await activities.startRun({ runId, tenantId, jobs: [{ name: 'build', needs: [], steps: [{ name: 'hello', run: 'true' }] }] as never });
      const step = { tenantId, runId, job: 'build', step: 'hello' };
      observeStepStart(await markStepRunning(db, step, 1, 'card-host'));
      const status = statuses[i % statuses.length];
      observeStepFinished(status, await recordStepResult(db, step, status, status === 'success' ? 0 : 1, `logs/${runId}`));
      await activities.finishRun({ runId, tenantId, status });
      if (i === 46) half = await runSeries();
    }
    const all = await runSeries();
    // The second half of the runs added nothing; each family holds at most one series per status (7 values with `other`).
    expect([...all].filter((s) => !half.has(s))).toEqual([]);
    expect([...all].filter((s) => used.some((u) => s.includes(u)))).toEqual([]);
    const perFamily = new Map<string, number>();
    for (const s of all) perFamily.set(s.replace(/\{.*$/, ''), (perFamily.get(s.replace(/\{.*$/, '')) ?? 0) + 1);
    for (const [family, n] of perFamily) expect([family, n <= 7]).toEqual([family, true]);
    expect(perFamily.get('dotgit_runs_finished_total')).toBe(3);
    expect(all.size).toBeLessThanOrEqual(5 * 7);
    console.log(`run and step series after 94 recorded runs: ${all.size} (${[...perFamily].map(([f, n]) => `${f} ${n}`).join(', ')})`);
  } finally {
    await db.end();
  }
});
