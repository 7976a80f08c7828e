import { ceilSeconds, rateLimitHeaders, retryAfterSeconds } from '../../gateway/rate-limit/headers';

const r = (remaining: number, resetMs: number, allowed = true, retryAfterMs = 0) => ({ allowed, remaining, resetMs, retryAfterMs });

test('a window-only class: one policy, draft-08 structured fields', () => {
  expect(rateLimitHeaders('api-read', { window: { limit: 600, windowMs: 60_000 } }, r(599, 60_000))).toEqual({
    'RateLimit-Policy': '"api-read";q=600;w=60',
    RateLimit: '"api-read";r=599;t=60',
  });
});

test('a class with a bucket lists the burst policy second; seconds are rounded up', () => {
  const limits = { window: { limit: 60, windowMs: 60_000 }, bucket: { capacity: 10, ratePerSecond: 1 } };
  expect(rateLimitHeaders('git-push', limits, r(59, 59_001), r(9, 1000))).toEqual({
    'RateLimit-Policy': '"git-push";q=60;w=60, "git-push-burst";q=10;w=10',
    RateLimit: '"git-push";r=59;t=60, "git-push-burst";r=9;t=1',
  });
  const slow = { window: { limit: 5, windowMs: 1500 }, bucket: { capacity: 3, ratePerSecond: 2 } };
  expect(rateLimitHeaders('api-write', slow, r(0, 1), r(0, 1001))).toEqual({
    'RateLimit-Policy': '"api-write";q=5;w=2, "api-write-burst";q=3;w=2',
    RateLimit: '"api-write";r=0;t=1, "api-write-burst";r=0;t=2',
  });
});

test('seconds', () => {
  expect([0, 1, 999, 1000, 1001].map(ceilSeconds)).toEqual([0, 1, 1, 1, 2]);
  expect([0, 1, 999, 1000, 1001, 59_999].map(retryAfterSeconds)).toEqual([1, 1, 1, 1, 2, 60]);
});
