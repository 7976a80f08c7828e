import { Redis } from 'ioredis';
import { createRedis, repoGenerationKey } from '../../core/redis';
import { startRedisSentinels, type RedisSentinelHandle } from '../../infra/provision/redis-sentinel';
import { freePort } from '../../infra/provision/free-port';
import { platformInfo } from '../harness/platform-info';
import { api, createPrivateRepo, createTenantWithAdmin, waitForRun, type TenantFixture } from '../helpers/api-client';
import { git, localRepo, runIdsFrom, tempDir, writeFiles } from '../helpers/git';
import { cloneUrlVia } from '../helpers/own-gateway';
import { killAllServices, startService, type OwnService } from '../helpers/own-services';

// Issue 13, "Redis master loss under load" for pushes and runs: a git-server and a gateway of the
// test's own (real processes on the shared platform's Postgres, Temporal and repositories) whose
// REDIS_URL is a Sentinel set of its own; pushes with a pipeline go through them one after another
// while the master is killed -9. Every push is accepted (the write lock takes the Postgres advisory
// lock while Redis cannot answer, the limiter fails open), every accepted commit is on the branch,
// and each push started exactly one run, which reaches success. Afterwards both processes use the
// new master (not their fallbacks).

const quiet = { info: () => undefined, debug: () => undefined, warn: () => undefined };
const PIPELINE = 'jobs:\n  build:\n    steps:\n      - run: echo built\n';

let set: RedisSentinelHandle;
let t: TenantFixture;
let gateway: OwnService;
let gitServer: OwnService;

beforeAll(async () => {
  [set, t] = await Promise.all([startRedisSentinels({ dataDir: tempDir('dotgit-e2e-sentinel-'), port: 0, log: quiet, downAfterMs: 1000 }), createTenantWithAdmin()]);
  const p = platformInfo();
  const own = { DOTGIT_DATA_DIR: p.dataDir, DOTGIT_API_PORT: String(p.apiPort), DOTGIT_WORKER_PORT: String(p.workerPort), REDIS_URL: set.redisUrl };
  const gitPort = await freePort();
  gitServer = await startService('git-server/main.ts', gitPort, { ...own, DOTGIT_GIT_PORT: String(gitPort) });
  const gwPort = await freePort();
  gateway = await startService('gateway/main.ts', gwPort, { ...own, PORT: String(gwPort), DOTGIT_GIT_PORT: String(gitPort) });
}, 120_000);

afterAll(async () => {
  killAllServices();
  await set?.stop();
});

test('pushes and their runs go on through a Redis master loss', async () => {
  const repo = await createPrivateRepo(t, 'redis-ha');
  const url = cloneUrlVia(`http://127.0.0.1:${gateway.port}`, t.tenant, repo, t.token);
  const work = await localRepo({ '.dotgit/pipeline.yml': PIPELINE, 'n.txt': '0\n' });
  const sentinel = new Redis(set.sentinels[0]);
  let probe: Redis | undefined;
  const masterPort = async () => Number(((await sentinel.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', set.masterName)) as [string, string])[1]);
  try {
    const pushes: Array<{ sha: string; code: number; runs: string[]; stderr: string }> = [];
    const push = async (n: number) => {
      await writeFiles(work, { 'n.txt': `${n}\n` });
      await git(['commit', '-qam', `push ${n}`], work);
      const sha = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
      const r = await git(['push', url, 'main'], work);
      pushes.push({ sha, code: r.code, runs: runIdsFrom(r.stderr), stderr: r.stderr });
    };
    let n = 0;
    while (n < 3) await push(++n);
    const port = await masterPort();
    process.kill(set.processes.find((p) => p.role === 'redis' && p.port === port)!.pid!, 'SIGKILL');
    const killedAt = Date.now();
    // Through the failover, and three pushes more once the new master is named.
    let pushesAfter = 0;
    while (pushesAfter < 3) {
      await push(++n);
      if ((await masterPort()) !== port) pushesAfter++;
      if (Date.now() - killedAt > 60_000) throw new Error('no new master 60 s after the kill');
    }
    // Both processes use Redis again, on the new master: a push bumps the repository's generation
    // there, and the gateway's answers are counted by its limiter (fail-open answers carry no RateLimit).
    const reader = (probe = createRedis(set.redisUrl)); // made now: it reads what the new master has
    const generation = async () => Number(await reader.get(repoGenerationKey(`${t.tenant}/${repo}`)));
    // The git-server's bumps have a 250 ms budget each (DOTGIT_GIT_REDIS_TIMEOUT_MS) and the new master
    // may be busy for a while (its replicas resync from it): "again" means within a few pushes.
    let bumped = false;
    for (let tries = 0; tries < 10 && !bumped; tries++) {
      const before = await generation();
      await push(++n);
      bumped = (await generation()) > before; // the post-receive hook's bump, made before git answers
    }
    expect(bumped).toBe(true);
    let limited: string | null = null;
    for (let tries = 0; tries < 10 && limited === null; tries++) {
      const counted = await fetch(`http://127.0.0.1:${gateway.port}/api/v1/repos/${t.tenant}/${repo}`, { headers: { authorization: `Bearer ${t.token}` } });
      expect(counted.status).toBe(200);
      limited = counted.headers.get('ratelimit');
      if (limited === null) await new Promise((r) => setTimeout(r, 500));
    }
    expect(limited).toMatch(/^"api-read";r=\d+/);
    console.log(`${pushes.length} pushes, ${n - 3} of them after the kill (${Date.now() - killedAt} ms)`);

    expect(pushes.filter((p) => p.code !== 0).map((p) => `${p.stderr}\n--- git-server:\n${gitServer.output().slice(-3000)}`)).toEqual([]);
    const tip = await git(['ls-remote', url, 'refs/heads/main'], work);
    expect(tip.stdout.split('\t')[0]).toBe(pushes[pushes.length - 1].sha);
    // One run per push, none twice; each ends in success.
    expect(pushes.map((p) => p.runs.length)).toEqual(pushes.map(() => 1));
    const ids = pushes.map((p) => p.runs[0]);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect((await waitForRun(id, t.token)).status).toBe('success');
    const listed = await api<{ runs: Array<{ id: string }> }>('GET', `/api/v1/repos/${t.tenant}/${repo}/runs`, { token: t.token });
    expect(listed.body.runs.map((r) => r.id).sort()).toEqual([...ids].sort());
  } finally {
    sentinel.disconnect();
    probe?.disconnect();
  }
}, 240_000);
