import net from 'node:net';
import { Redis } from 'ioredis';
import { createRedis } from '../../core/redis';
import { acquireRedisLock } from '../../core/redis-lock';
import { UnavailableError } from '../../core/errors';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, uniqueName } from '../helpers/api-client';
import { cloneUrl, git, localRepo } from '../helpers/git';

// The cross-instance write lock, on the platform's real Redis.

let redis: Redis;
beforeAll(() => {
  redis = new Redis(platformInfo().redisUrl);
});
afterAll(() => redis.disconnect());

const settled = <T>(p: Promise<T>) => {
  let done = false;
  void p.then(() => (done = true), () => (done = true));
  return () => done;
};

test('a second holder waits for the first; waiting too long is 503-shaped; a lease outlives its holder only briefly', async () => {
  const key = `dotgit:test-lock:${uniqueName('k')}`;
  // Leases of 2 s, renewed every third of it: a stall of the test's own event loop on a loaded
  // machine must not look like a dead holder.
  const first = await acquireRedisLock(redis, key, 'thing', { leaseMs: 2000 });
  const second = acquireRedisLock(redis, key, 'thing', { leaseMs: 2000, waitMs: 20_000 });
  const secondDone = settled(second);
  await new Promise((r) => setTimeout(r, 5000)); // longer than the lease: renewal keeps it held
  expect(secondDone()).toBe(false);
  await first();
  const releaseSecond = await second;
  await expect(acquireRedisLock(redis, key, 'thing', { waitMs: 100 })).rejects.toBeInstanceOf(UnavailableError);
  await releaseSecond();
  // A holder that never releases (crashed): its lease runs out.
  await redis.set(key, 'crashed-holder', 'PX', 200);
  const after = await acquireRedisLock(redis, key, 'thing', { waitMs: 10_000 });
  await after();
});

test('a push waits while another instance holds the repository lock', async () => {
  const owner = await createTenantWithAdmin();
  const repo = uniqueName('locked');
  await api('POST', '/api/v1/repos', { token: owner.token, body: { owner: owner.tenant, name: repo } });
  const work = await localRepo({ 'a.txt': 'a\n' });
  const lockKey = `dotgit:lock:repo:${owner.tenant}/${repo}`;
  await redis.set(lockKey, 'other-instance', 'PX', 60_000);
  const push = git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work);
  const pushDone = settled(push);
  await new Promise((r) => setTimeout(r, 1500));
  expect(pushDone()).toBe(false);
  await redis.del(lockKey);
  expect((await push).code).toBe(0);
  // Released once the git-server has seen receive-pack end, which may be just after the client has
  // its answer; a lock left held would keep the key until its lease (30 s) runs out.
  let held = 1;
  for (const deadline = Date.now() + 5000; held && Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) held = await redis.exists(lockKey);
  expect(held).toBe(0);
});

/**
 * A TCP proxy to the platform's Redis that can go away for a while: open connections cut, new ones
 * refused (ECONNREFUSED), so the client gives up on queued commands instead of resending them.
 */
async function cuttableProxy(target: URL) {
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        open.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `redis://127.0.0.1:${port}`,
    cut(ms: number) {
      server.close();
      for (const s of open) s.destroy();
      setTimeout(() => server.listen(port, '127.0.0.1'), ms);
    },
    close: () => new Promise((r) => server.close(r)),
  };
}

test('a release that fails while Redis is unreachable is retried, so the repository is not locked for the rest of the lease', async () => {
  const proxy = await cuttableProxy(new URL(platformInfo().redisUrl));
  const holder = createRedis(proxy.url, { commandTimeoutMs: 300 });
  try {
    const key = `dotgit:test-lock:${uniqueName('k')}`;
    const release = await acquireRedisLock(holder, key, 'thing', { leaseMs: 20_000 });
    const acquiredAt = Date.now();
    proxy.cut(2500);
    const t0 = Date.now();
    await release(); // the first attempt fails; the caller is not held up by the retries
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(await redis.exists(key)).toBe(1); // Redis never heard the release
    // Redis is reachable again after 2.5 s: the lock is gone within seconds, not at the 20 s lease.
    const deadline = Date.now() + 15_000; // still short of the 20 s lease: a retry, not the lease's end
    while ((await redis.exists(key)) === 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await redis.exists(key)).toBe(0);
    expect(Date.now() - acquiredAt).toBeLessThan(20_000); // gone by the retry, not by the lease's end
  } finally {
    holder.disconnect();
    await proxy.close();
  }
});
