import { pickIndex, UpstreamPool, type InstanceState } from '../../core/upstream-pool';

// The gateway's balancing (ADR 0014): round robin over healthy instances, taken-out ones skipped,
// unhealthy-but-reachable ones only when nothing is up, nothing at all when every one is down.

describe('pickIndex', () => {
  test('round robin from the cursor over up instances, skipping the others', () => {
    const s: InstanceState[] = ['up', 'down', 'up', 'unhealthy'];
    expect(pickIndex(s, 0)).toBe(0);
    expect(pickIndex(s, 1)).toBe(2);
    expect(pickIndex(s, 3)).toBe(0); // wraps, and an up instance beats an unhealthy one
  });

  test('unhealthy instances only when none is up; never a down one', () => {
    expect(pickIndex(['down', 'unhealthy', 'unhealthy'], 2)).toBe(2);
    expect(pickIndex(['down', 'down'], 0)).toBe(-1);
  });

  test('excluded instances (already tried by this request) are skipped', () => {
    expect(pickIndex(['up', 'up'], 0, (i) => i === 0)).toBe(1);
    expect(pickIndex(['up', 'unhealthy'], 0, (i) => i === 0)).toBe(1);
    expect(pickIndex(['up', 'up'], 0, () => true)).toBe(-1);
  });
});

describe('UpstreamPool', () => {
  const urls = ['http://10.0.0.1:1', 'http://10.0.0.2:2', 'http://10.0.0.3:3'];

  test('spreads picks evenly over the instances', () => {
    const pool = new UpstreamPool('api', urls);
    const hosts = Array.from({ length: 6 }, () => pool.pick()!.url.host);
    expect(hosts).toEqual(['10.0.0.1:1', '10.0.0.2:2', '10.0.0.3:3', '10.0.0.1:1', '10.0.0.2:2', '10.0.0.3:3']);
  });

  test('a taken-out instance gets nothing until a probe reaches it again', async () => {
    const answers = new Map<string, InstanceState>(urls.map((u) => [new URL(u).host, 'up']));
    const pool = new UpstreamPool('api', urls, { probe: async (u) => ({ state: answers.get(u.host)! }) });
    pool.markDown(pool.instances[1], 'ECONNREFUSED');
    answers.set('10.0.0.2:2', 'down');
    expect(new Set(Array.from({ length: 6 }, () => pool.pick()!.url.host))).toEqual(new Set(['10.0.0.1:1', '10.0.0.3:3']));
    await pool.probeAll();
    expect(pool.instances[1].state).toBe('down');
    answers.set('10.0.0.2:2', 'up');
    await pool.probeAll();
    expect(Array.from({ length: 3 }, () => pool.pick()!.url.host).sort()).toEqual(['10.0.0.1:1', '10.0.0.2:2', '10.0.0.3:3']);
  });

  test('every instance down: no pick, allDown, check rejects naming each; one up: check passes', async () => {
    const answers: InstanceState[] = ['down', 'down', 'down'];
    const pool = new UpstreamPool('api', urls, { probe: async (u) => ({ state: answers[urls.indexOf(u.origin)], reason: 'ECONNREFUSED' }) });
    await expect(pool.check()).rejects.toThrow(/no healthy api instance: 10\.0\.0\.1:1 down \(ECONNREFUSED\), 10\.0\.0\.2:2 down/);
    expect(pool.allDown()).toBe(true);
    expect(pool.pick()).toBeUndefined();
    answers[2] = 'up';
    await expect(pool.check()).resolves.toBeUndefined();
    expect(pool.pick()!.url.host).toBe('10.0.0.3:3');
  });

  test('a reset connection is checked by a probe at once: out only if the probe cannot reach it', async () => {
    let answer: InstanceState = 'up';
    const pool = new UpstreamPool('api', urls, { probe: async () => ({ state: answer, reason: 'ECONNREFUSED' }) });
    pool.recheck(pool.instances[0]);
    expect(pool.pick()).toBe(pool.instances[0]); // still in rotation while the probe runs
    await new Promise((r) => setImmediate(r));
    expect(pool.instances[0].state).toBe('up'); // one request's fate, not the instance's
    answer = 'down';
    pool.recheck(pool.instances[0]);
    await new Promise((r) => setImmediate(r));
    expect(pool.instances[0].state).toBe('down');
  });

  test('a single fixed URL is never taken out (nothing would probe it back)', () => {
    const pool = UpstreamPool.single('canary', new URL('http://10.0.0.9:9'));
    pool.markDown(pool.instances[0], 'ECONNREFUSED');
    expect(pool.pick()!.url.host).toBe('10.0.0.9:9');
  });
});
