import { KeyedLimiter } from '../../git-server/concurrency-limiter';
import { TooManyRequestsError, UnavailableError } from '../../core/errors';

test('runs up to the limit, queues the next ones in order, refuses past the queue with 429', async () => {
  const limiter = new KeyedLimiter({ concurrency: 2, queue: 1, maxWaitMs: 10_000 });
  const a = await limiter.acquire('r');
  const b = await limiter.acquire('r');
  let cGot = false;
  const c = limiter.acquire('r').then((release) => {
    cGot = true;
    return release;
  });
  await expect(limiter.acquire('r')).rejects.toBeInstanceOf(TooManyRequestsError);
  expect(limiter.stats('r')).toEqual({ running: 2, waiting: 1 });
  // Other keys are not affected.
  (await limiter.acquire('other'))();
  a();
  const releaseC = await c;
  expect(cGot).toBe(true);
  b();
  releaseC();
  expect(limiter.stats('r')).toEqual({ running: 0, waiting: 0 });
});

test('a waiter that waits too long gets 503 with Retry-After, and leaves the queue', async () => {
  const limiter = new KeyedLimiter({ concurrency: 1, queue: 5, maxWaitMs: 50 });
  const a = await limiter.acquire('r');
  const err = await limiter.acquire('r').catch((e) => e);
  expect(err).toBeInstanceOf(UnavailableError);
  expect(err.retryAfterSeconds).toBe(10);
  expect(limiter.stats('r')).toEqual({ running: 1, waiting: 0 });
  a();
  a(); // releasing twice is harmless
  expect(limiter.stats('r')).toEqual({ running: 0, waiting: 0 });
});
