import { readFileSync } from 'node:fs';
import path from 'node:path';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, uniqueName, waitForRun } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom } from '../helpers/git';

// kill -9 of the worker in the middle of a step: the step's heartbeats stop, Temporal retries it
// on the restarted worker (the supervisor brings it back), and the run still finishes.

test('a worker killed mid-step: the step runs again on the restarted worker and the run succeeds', async () => {
  const info = platformInfo();
  const owner = await createTenantWithAdmin();
  const repo = uniqueName('wkill');
  expect((await api('POST', '/api/v1/repos', { token: owner.token, body: { owner: owner.tenant, name: repo, visibility: 'private' } })).status).toBe(201);
  const work = await localRepo({
    '.dotgit/pipeline.yml': 'jobs:\n  long:\n    steps:\n      - name: ticks\n        run: |\n          for i in $(seq 1 12); do echo "tick $i"; sleep 0.5; done\n          echo finished\n',
  });
  const push = await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work);
  const [id] = runIdsFrom(push.stderr);
  const logs = () => api('GET', `/api/v1/runs/${encodeURIComponent(id)}/logs?job=long&step=ticks`, { token: owner.token });

  const deadline = Date.now() + 60_000;
  while (!(await logs()).text.includes('tick 2')) {
    if (Date.now() > deadline) throw new Error('the step never started ticking');
    await new Promise((r) => setTimeout(r, 100));
  }
  const pidFile = path.join(info.dataDir, 'run', 'worker.pid');
  const workerPid = (JSON.parse(readFileSync(pidFile, 'utf8')) as { pid: number }).pid;
  process.kill(workerPid, 'SIGKILL');

  const run = await waitForRun(id, owner.token, 240_000);
  expect(run.status).toBe('success');
  expect(run.steps[0]).toMatchObject({ name: 'ticks', status: 'success', exitCode: 0 });
  // The stored log is the retried attempt's whole output.
  const text = (await logs()).text;
  expect(text).toContain('tick 12');
  expect(text).toContain('finished');
  // A new worker took over.
  const newPid = (JSON.parse(readFileSync(pidFile, 'utf8')) as { pid: number }).pid;
  expect(newPid).not.toBe(workerPid);
}, 300_000);
