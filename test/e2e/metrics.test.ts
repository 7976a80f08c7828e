import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, waitForRun } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom, writeFiles } from '../helpers/git';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ROOT } from '../../infra/root';
import { exportedNames, metricNamesIn, scrape, type Scrape } from '../helpers/prom';

// Issue 14: every process of the platform is a Prometheus target. Each answers /metrics with the
// process metrics; a push through the gateway moves the HTTP histograms of gateway, api and
// git-server, and the run's end moves the worker's run and step series; the worker also serves
// the Temporal SDK's metrics, and the Temporal server has its own endpoint on a known port.
// Other suites share the platform, so counts are compared as "at least this much more".

const info = platformInfo();
const targets = {
  gateway: `${info.gatewayUrl}/metrics`,
  api: `http://127.0.0.1:${info.apiPort}/metrics`,
  'git-server': `http://127.0.0.1:${info.gitPort}/metrics`,
  worker: `http://127.0.0.1:${info.workerPort}/metrics`,
};

const PIPELINE = `
jobs:
  good:
    steps:
      - name: ok
        run: echo fine
  bad:
    steps:
      - name: fails
        run: exit 3
`;

const all = async () => Object.fromEntries(await Promise.all(Object.entries(targets).map(async ([k, url]) => [k, await scrape(url)] as const))) as Record<keyof typeof targets, Scrape>;
const http = (s: Scrape, labels: Record<string, string>) => s.sum('dotgit_http_request_duration_seconds_count', labels) ?? 0;

test('each service process serves the process metrics and its HTTP histogram', async () => {
  const s = await all();
  for (const [name, one] of Object.entries(s)) {
    expect([name, one.sum('process_cpu_user_seconds_total')]).toEqual([name, expect.any(Number)]);
    expect([name, one.sum('nodejs_eventloop_lag_seconds')]).toEqual([name, expect.any(Number)]);
  }
  // The gateway's rate-limit counters (README) are scrapeable now that it has /metrics.
  expect(s.gateway.text).toContain('# TYPE dotgit_rate_limit_redis_failures_total counter');
  // Every HTTP server has its RED histogram, the worker's (health, readiness, scrapes) too: the scrape above is in this one's.
  expect(http(await scrape(targets.worker), { service: 'worker', route: '/metrics' })).toBeGreaterThan(0);
  // Route labels are templates or classes, never raw paths.
  for (const one of Object.values(s)) {
    for (const line of one.text.split('\n').filter((l) => l.startsWith('dotgit_http_request_duration_seconds_count{'))) {
      // A raw repository path (`/acme/web.git/…`), not the template (`/:owner/:repo.git/…`).
      expect(line).not.toMatch(/route="[^"]*\/(?!:)[^/"]*\.git\//);
    }
  }
});

test('a push with a failing job moves the HTTP, run, step and pickup series; the SDK and Temporal server have theirs', async () => {
  const owner = await createTenantWithAdmin();
  const before = await all();
  const created = await api('POST', '/api/v1/repos', { token: owner.token, body: { owner: owner.tenant, name: 'metered', visibility: 'private' } });
  expect(created.status).toBe(201);
  const work = await localRepo({ '.dotgit/pipeline.yml': PIPELINE });
  const push = await git(['push', cloneUrl(owner.tenant, 'metered', owner.token), 'main'], work);
  expect(push.code).toBe(0);
  const [runId] = runIdsFrom(push.stderr);
  expect((await waitForRun(runId, owner.token)).status).toBe('failure');
  // And one that succeeds (a branch without the failing job), so completed workflows are counted too.
  await writeFiles(work, { '.dotgit/pipeline.yml': 'jobs:\n  good:\n    steps:\n      - run: echo fine\n' });
  await git(['checkout', '-q', '-b', 'green'], work);
  await git(['commit', '-qam', 'green'], work);
  const green = await git(['push', cloneUrl(owner.tenant, 'metered', owner.token), 'green'], work);
  expect((await waitForRun(runIdsFrom(green.stderr)[0], owner.token)).status).toBe('success');
  // The run is recorded before its workflow execution ends: wait for the SDK to count that end.
  for (const deadline = Date.now() + 20_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 250))) {
    if ((await scrape(targets.worker)).sum('temporal_workflow_completed_total') !== undefined) break;
  }
  const after = await all();

  // Gateway: by rate-limit class; api and git-server: by route template.
  expect(http(after.gateway, { route: 'git-push', method: 'POST', code: '200' })).toBeGreaterThanOrEqual(http(before.gateway, { route: 'git-push', method: 'POST', code: '200' }) + 1);
  expect(http(after.gateway, { route: 'api-write', code: '201' })).toBeGreaterThanOrEqual(http(before.gateway, { route: 'api-write', code: '201' }) + 1);
  expect(http(after.api, { route: '/api/v1/repos', method: 'POST', code: '201' })).toBeGreaterThanOrEqual(http(before.api, { route: '/api/v1/repos', method: 'POST', code: '201' }) + 1);
  const receivePack = (s: Scrape) => s.text.split('\n').filter((l) => l.startsWith('dotgit_http_request_duration_seconds_count{') && l.includes('git-receive-pack') && l.includes('method="POST"'));
  expect(receivePack(after['git-server']).length).toBeGreaterThan(0);
  expect(http(after['git-server'], { service: 'git-server', method: 'POST', code: '200' })).toBeGreaterThan(http(before['git-server'], { service: 'git-server', method: 'POST', code: '200' }));

  // Worker: the run's end, its two steps, the pickup latency of its two jobs.
  const w0 = before.worker;
  const w1 = after.worker;
  expect(w1.sum('dotgit_runs_finished_total', { status: 'failure' })).toBeGreaterThanOrEqual((w0.sum('dotgit_runs_finished_total', { status: 'failure' }) ?? 0) + 1);
  expect(w1.sum('dotgit_run_duration_seconds_count', { status: 'failure' })).toBeGreaterThanOrEqual((w0.sum('dotgit_run_duration_seconds_count', { status: 'failure' }) ?? 0) + 1);
  expect(w1.sum('dotgit_steps_finished_total', { status: 'success' })).toBeGreaterThanOrEqual((w0.sum('dotgit_steps_finished_total', { status: 'success' }) ?? 0) + 1);
  expect(w1.sum('dotgit_steps_finished_total', { status: 'failure' })).toBeGreaterThanOrEqual((w0.sum('dotgit_steps_finished_total', { status: 'failure' }) ?? 0) + 1);
  expect(w1.sum('dotgit_step_duration_seconds_count')).toBeGreaterThanOrEqual((w0.sum('dotgit_step_duration_seconds_count') ?? 0) + 2);
  expect(w1.sum('dotgit_push_to_step_start_seconds_count')).toBeGreaterThanOrEqual((w0.sum('dotgit_push_to_step_start_seconds_count') ?? 0) + 2);

  // The Temporal SDK's own metrics, through the worker's /metrics.
  expect([...w1.names()].filter((n) => n.startsWith('temporal_workflow_'))).toEqual(expect.arrayContaining(['temporal_workflow_completed_total', 'temporal_workflow_failed_total']));
  // The failed run failed its workflow execution (issue 14: the Web UI tells the truth).
  expect(w1.sum('temporal_workflow_failed_total', { workflow_type: 'pipeline' })).toBeGreaterThan(0);
  expect(w1.sum('temporal_activity_execution_latency_seconds_count')).toBeGreaterThan(0);

  // The Temporal server's, on the port the platform chose and reports.
  expect(info.temporalMetricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  const server = await scrape(info.temporalMetricsUrl!);
  expect(server.sum('service_requests')).toBeGreaterThan(0);
});

test('every dashboard query and alert rule names metrics the processes export', async () => {
  // After the push above, so the Temporal SDK's and server's families have appeared.
  const names = new Set(['up']);
  for (const s of [...Object.values(await all()), await scrape(info.temporalMetricsUrl!)]) for (const n of exportedNames(s)) names.add(n);
  const dir = path.join(ROOT, 'infra', 'observability');
  const queries: Array<[string, string]> = [];
  for (const file of readdirSync(path.join(dir, 'dashboards')).filter((f) => f.endsWith('.json'))) {
    const dash = JSON.parse(readFileSync(path.join(dir, 'dashboards', file), 'utf8')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
    for (const p of dash.panels) for (const t of p.targets) queries.push([`${file}: ${p.title}`, t.expr]);
  }
  const rules = parseYaml(readFileSync(path.join(dir, 'alerts.yml'), 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
  for (const g of rules.groups) for (const r of g.rules) queries.push([`alerts.yml: ${r.alert}`, r.expr]);
  expect(queries.length).toBeGreaterThan(20);
  const missing = queries.flatMap(([where, expr]) => metricNamesIn(expr).filter((n) => !names.has(n)).map((n) => `${where}: ${n}`));
  expect(missing).toEqual([]);
});
