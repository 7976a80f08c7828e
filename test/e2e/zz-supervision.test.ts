import { readFileSync } from 'node:fs';
import path from 'node:path';
import { platformInfo } from '../harness/platform-info';
import { isAlive } from '../helpers/procs';
import type { TopologyProcess } from '../../infra/topology';
import { api, createTenantWithAdmin } from '../helpers/api-client';

// A service that crashes is started again by the runner (named zz- so it runs after the others
// that share this platform). Kills the api with SIGKILL, as the kernel's OOM killer would.

test('a crashed api process is restarted and the platform answers again', async () => {
  const { servicePids, gatewayUrl, dataDir } = platformInfo();
  const pid = servicePids.api;
  expect(pid).toBeGreaterThan(0);
  process.kill(pid, 'SIGKILL');
  let sawDown = false;
  const deadline = Date.now() + 60_000;
  let healthy = false;
  while (Date.now() < deadline) {
    const res = await fetch(`${gatewayUrl}/healthz`).catch(() => undefined);
    if (res && res.status !== 200) sawDown = true;
    if (sawDown && res?.status === 200) {
      healthy = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(sawDown).toBe(true);
  expect(healthy).toBe(true);
  const t = await createTenantWithAdmin();
  expect((await api('GET', `/api/v1/repos/${t.tenant}/none`, { token: t.token })).status).toBe(404);
  // The runner's topology file lists the new api process (rewritten, a moment after, when it started).
  const apisListed = () => (JSON.parse(readFileSync(path.join(dataDir, 'run', 'topology.json'), 'utf8')) as { processes: TopologyProcess[] }).processes.filter((p) => p.role === 'api');
  const listedBy = Date.now() + 5000;
  while (apisListed()[0]?.pid === pid && Date.now() < listedBy) await new Promise((r) => setTimeout(r, 100));
  const apis = apisListed();
  expect(apis).toHaveLength(1);
  expect(apis[0].pid).not.toBe(pid);
  expect(isAlive(apis[0].pid)).toBe(true);
});
