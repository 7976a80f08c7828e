import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { ensurePrometheus, startPrometheus, type PrometheusHandle } from '../../infra/provision/prometheus';
import { ROOT } from '../../infra/root';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, waitForRun } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom } from '../helpers/git';

// Issue 14: a real Prometheus (the Debian package, installed when missing) scraping every process
// of the shared platform, as `npm start -- --observability` runs it; the alert rules pass
// `promtool check rules` and their unit tests.

const run = promisify(execFile);
const info = platformInfo();
const quiet = { info: () => {}, debug: () => {}, warn: console.warn };
const RULES = path.join(ROOT, 'infra', 'observability', 'alerts.yml');
let prom: PrometheusHandle;
let dataDir: string;

beforeAll(async () => {
  dataDir = path.join(ROOT, '.test-data', `prometheus-${process.pid}`);
  await fs.rm(dataDir, { recursive: true, force: true });
  prom = await startPrometheus({
    dataDir,
    port: 0,
    log: quiet,
    ruleFiles: [RULES],
    scrapeIntervalSeconds: 1,
    targets: [
      { job: 'gateway', instance: 'gateway-1', url: `${info.gatewayUrl}/metrics` },
      { job: 'api', instance: 'api-1', url: `http://127.0.0.1:${info.apiPort}/metrics` },
      { job: 'git-server', instance: 'git-server-1', url: `http://127.0.0.1:${info.gitPort}/metrics` },
      { job: 'worker', instance: 'worker-1', url: `http://127.0.0.1:${info.workerPort}/metrics` },
      { job: 'temporal', instance: 'temporal-1', url: info.temporalMetricsUrl! },
    ],
  });
}, 300_000);

afterAll(async () => {
  await prom?.stop();
  await fs.rm(dataDir, { recursive: true, force: true });
});

async function query(promql: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> {
  const res = await fetch(`${prom.url}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = (await res.json()) as { status: string; data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
  expect(body.status).toBe('success');
  return body.data.result;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  for (const deadline = Date.now() + timeoutMs; ; await new Promise((r) => setTimeout(r, 500))) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}

test('promtool accepts the alert rules, and their unit tests pass', async () => {
  const { promtool } = await ensurePrometheus(quiet);
  await run(promtool, ['check', 'rules', RULES]);
  await run(promtool, ['test', 'rules', path.join(ROOT, 'infra', 'observability', 'alerts.test.yml')]);
});

test('every process is an up target; PromQL sees runs by status and step durations after a run', async () => {
  const jobs = ['api', 'gateway', 'git-server', 'temporal', 'worker'];
  await until('every target up', async () => {
    const up = await query('up == 1');
    return jobs.every((j) => up.some((r) => r.metric.job === j)) ? true : undefined;
  });
  expect((await query('up == 0')).map((r) => r.metric.job)).toEqual([]);

  const owner = await createTenantWithAdmin();
  expect((await api('POST', '/api/v1/repos', { token: owner.token, body: { owner: owner.tenant, name: 'scraped', visibility: 'private' } })).status).toBe(201);
  const work = await localRepo({ '.dotgit/pipeline.yml': 'jobs:\n  ok:\n    steps:\n      - run: "true"\n  bad:\n    steps:\n      - run: exit 1\n' });
  const push = await git(['push', cloneUrl(owner.tenant, 'scraped', owner.token), 'main'], work);
  expect(push.code).toBe(0);
  expect((await waitForRun(runIdsFrom(push.stderr)[0], owner.token)).status).toBe('failure');

  const failures = await until('the failed run in Prometheus', async () => {
    const r = await query('sum(dotgit_runs_finished_total{job="worker",status="failure"})');
    return r.length && Number(r[0].value[1]) >= 1 ? r : undefined;
  });
  expect(Number(failures[0].value[1])).toBeGreaterThanOrEqual(1);
  // Steps are counted by the sandbox worker, runs by the orchestration worker: two targets Prometheus
  // scrapes at their own moments, so the failed step may show a scrape after the failed run.
  const steps = await until('both step outcomes in Prometheus', async () => {
    const r = await query('sum by (status) (dotgit_step_duration_seconds_count{job="worker"})');
    return ['success', 'failure'].every((s) => r.some((x) => x.metric.status === s)) ? r : undefined;
  });
  expect(steps.map((r) => r.metric.status)).toEqual(expect.arrayContaining(['success', 'failure']));
  expect((await query('sum(dotgit_http_request_duration_seconds_count{job="gateway",route="git-push"})')).length).toBe(1);
});
