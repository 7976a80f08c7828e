import { platformInfo } from '../harness/platform-info';
import { api, createPrivateRepo, createTenantWithAdmin, waitForRun } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom } from '../helpers/git';
import { scrape } from '../helpers/prom';

// Issue 14 item 2 (ADR 0028): the worker times each live-log line from the sandbox's output until
// the run's Redis stream holds it. A step printing 50 lines adds at least 50 observations.

const workerMetrics = `http://127.0.0.1:${platformInfo().workerPort}/metrics`;

test("a step's output lines are timed into the live-log latency histogram, and its sandbox's start into the start-time one", async () => {
  const owner = await createTenantWithAdmin();
  const repo = await createPrivateRepo(owner, 'live');
  const scraped = await scrape(workerMetrics);
  const before = scraped.sum('dotgit_live_log_line_latency_seconds_count') ?? 0;
  const startsBefore = scraped.sum('dotgit_sandbox_start_seconds_count') ?? 0;
  const work = await localRepo({ '.dotgit/pipeline.yml': 'jobs:\n  talk:\n    steps:\n      - run: for i in $(seq 1 50); do echo "line $i"; done\n' });
  const push = await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work);
  expect(push.code).toBe(0);
  const runId = runIdsFrom(push.stderr)[0];
  expect((await waitForRun(runId, owner.token)).status).toBe('success');
  const after = await scrape(workerMetrics);
  expect(after.sum('dotgit_live_log_line_latency_seconds_count')).toBeGreaterThanOrEqual(before + 50);
  expect(after.sum('dotgit_live_log_line_latency_seconds_bucket', { le: '+Inf' })).toBe(after.sum('dotgit_live_log_line_latency_seconds_count'));
  // One step, one start, labelled by the sandbox's driver; the marker is not in the step's log.
  expect(after.sum('dotgit_sandbox_start_seconds_count')).toBeGreaterThanOrEqual(startsBefore + 1);
  expect(after.sum('dotgit_sandbox_start_seconds_count', { driver: 'runsc' })).toBeGreaterThanOrEqual(1);
  const log = await api('GET', `/api/v1/runs/${runId}/logs?job=talk`, { token: owner.token });
  expect(log.status).toBe(200);
  expect(log.text).toContain('line 50');
  expect(log.text).not.toContain('dotgit-sandbox-started');
});
