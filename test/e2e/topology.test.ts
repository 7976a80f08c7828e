import { readFileSync } from 'node:fs';
import path from 'node:path';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, uniqueName, waitForRun } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom } from '../helpers/git';
import { isAlive } from '../helpers/procs';
import type { TopologyProcess } from '../../infra/topology';

// Issue 11 item 8: the runner writes <dataDir>/run/topology.json while it runs, one entry per
// process it started, so scripts can find and stop a given instance.

const info = platformInfo();
const topology = () => JSON.parse(readFileSync(path.join(info.dataDir, 'run', 'topology.json'), 'utf8')) as { processes: TopologyProcess[] };

test('every process the runner started is listed with a live pid, and the services answer on their ports', async () => {
  const { processes } = topology();
  expect(processes.map((p) => p.role).sort()).toEqual(['api', 'gateway', 'git-server', 'postgres', 'redis', 'temporal', 'worker']);
  for (const p of processes) {
    expect({ role: p.role, alive: isAlive(p.pid) }).toEqual({ role: p.role, alive: true });
    expect(p.port).toBeGreaterThan(0);
    expect(p.instance).toMatch(/^[A-Za-z0-9][A-Za-z0-9._-]*$/);
  }
  const byRole = Object.fromEntries(processes.map((p) => [p.role, p]));
  expect(byRole.gateway.port).toBe(Number(new URL(info.gatewayUrl).port));
  expect(byRole.api.port).toBe(info.apiPort);
  expect(byRole['git-server'].port).toBe(info.gitPort);
  expect(byRole.worker.port).toBe(info.workerPort);
  expect(byRole.redis.port).toBe(Number(new URL(info.redisUrl).port));
  expect(byRole.postgres.port).toBe(Number(new URL(info.databaseUrl).port));
  expect(byRole.temporal.port).toBe(Number(info.temporalAddress.split(':').pop()));
  for (const role of ['gateway', 'api', 'git-server', 'worker']) {
    const res = await fetch(`${byRole[role].url}/healthz`, { signal: AbortSignal.timeout(5000) });
    expect({ role, status: res.status }).toEqual({ role, status: 200 });
  }
});

test("the worker's instance is the host its steps report", async () => {
  const owner = await createTenantWithAdmin();
  const repo = uniqueName('topo');
  expect((await api('POST', '/api/v1/repos', { token: owner.token, body: { owner: owner.tenant, name: repo, visibility: 'private' } })).status).toBe(201);
  const work = await localRepo({ '.dotgit/pipeline.yml': 'jobs:\n  one:\n    steps:\n      - name: hi\n        run: echo hi\n' });
  const pushed = await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work);
  const [id] = runIdsFrom(pushed.stderr);
  expect(id).toBeTruthy();
  const run = await waitForRun(id, owner.token);
  expect(run.status).toBe('success');
  const worker = topology().processes.find((p) => p.role === 'worker')!;
  expect(run.steps.map((s: { host: string }) => s.host)).toEqual([worker.instance]);
}, 150_000);
