import { platformInfo } from '../harness/platform-info';
import { createPrivateRepo, createTenantWithAdmin, waitForRun } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom } from '../helpers/git';
import { scrape } from '../helpers/prom';

// Issue 14 item 2 (ADR 0028): the worker times each live-log line from the sandbox's output until
// the run's Redis stream holds it. A step printing 50 lines adds at least 50 observations.

const workerMetrics = `http://127.0.0.1:${platformInfo().workerPort}/metrics`;

test("a step's output lines are timed into the live-log latency histogram", async () => {
  const owner = await createTenantWithAdmin();
  const repo = await createPrivateRepo(owner, 'live');
  const before = (await scrape(workerMetrics)).sum('dotgit_live_log_line_latency_seconds_count') ?? 0;
  const work = await localRepo({ '.dotgit/pipeline.yml': 'jobs:\n  talk:\n    steps:\n      - run: for i in $(seq 1 50); do echo "line $i"; done\n' });
  const push = await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work);
  expect(push.code).toBe(0);
  expect((await waitForRun(runIdsFrom(push.stderr)[0], owner.token)).status).toBe('success');
  const after = await scrape(workerMetrics);
  expect(after.sum('dotgit_live_log_line_latency_seconds_count')).toBeGreaterThanOrEqual(before + 50);
  expect(after.sum('dotgit_live_log_line_latency_seconds_bucket', { le: '+Inf' })).toBe(after.sum('dotgit_live_log_line_latency_seconds_count'));
});
