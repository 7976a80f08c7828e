import { Redis } from 'ioredis';
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
  const first = await acquireRedisLock(redis, key, 'thing', { leaseMs: 300 });
  const second = acquireRedisLock(redis, key, 'thing', { leaseMs: 300, waitMs: 5000 });
  const secondDone = settled(second);
  await new Promise((r) => setTimeout(r, 700)); // longer than the lease: renewal keeps it held
  expect(secondDone()).toBe(false);
  await first();
  const releaseSecond = await second;
  await expect(acquireRedisLock(redis, key, 'thing', { waitMs: 100 })).rejects.toBeInstanceOf(UnavailableError);
  await releaseSecond();
  // A holder that never releases (crashed): its lease runs out.
  await redis.set(key, 'crashed-holder', 'PX', 200);
  const after = await acquireRedisLock(redis, key, 'thing', { waitMs: 2000 });
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
  expect(await redis.exists(lockKey)).toBe(0); // released after the push
});
