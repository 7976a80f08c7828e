import { UnavailableError } from '../../core/errors';
import { httpErrorOf } from '../../core/http-errors';
import { isShardFenced, onShardFenced, retryActivitiesWhenFenced, retryWhenFenced, shardFenced } from '../../core/shard-fence';

// The fence's refusal (SQLSTATE DGF01, migration 0028's guard) as the platform answers it: a
// retry-shortly 503 with Retry-After, never a 500; a writer that can wait refreshes its router and
// tries again (ADR 0026).

const fenced = () => Object.assign(new Error('shard 3 is moving to another database: its writes are fenced for a few seconds, retry shortly'), { code: 'DGF01' });

test('the fence SQLSTATE is recognised, also as the cause of another error; other database errors are not', () => {
  expect(isShardFenced(fenced())).toBe(true);
  expect(isShardFenced(new Error('wrapped', { cause: fenced() }))).toBe(true);
  expect(isShardFenced(Object.assign(new Error('duplicate key'), { code: '23505' }))).toBe(false);
  expect(isShardFenced(undefined)).toBe(false);
});

test('a fenced write answers 503 with Retry-After and a message that says the shard is moving', () => {
  const err = shardFenced(fenced());
  expect(err).toBeInstanceOf(UnavailableError);
  expect(httpErrorOf(err)).toEqual({
    status: 503,
    code: 'unavailable',
    message: expect.stringMatching(/^shard 3 is moving to another database.*writes to this tenant's shard pause while it moves/),
    headers: { 'Retry-After': '1' },
  });
  expect(shardFenced(new Error('other'))).toBeUndefined();
});

test('mapping a refusal tells the listeners (a process refreshes its router)', () => {
  let heard = 0;
  const off = onShardFenced(() => heard++);
  shardFenced(fenced());
  shardFenced(new Error('other'));
  off();
  shardFenced(fenced());
  expect(heard).toBe(1);
});

test('retryWhenFenced refreshes the router between tries and answers once the write goes through; other errors pass at once', async () => {
  const log: string[] = [];
  const router = { refresh: async () => void log.push('refresh') };
  let tries = 0;
  const answer = await retryWhenFenced(router, async () => {
    log.push(`try ${++tries}`);
    if (tries < 3) throw fenced();
    return 'written';
  }, { delayMs: 1 });
  expect(answer).toBe('written');
  expect(log).toEqual(['try 1', 'refresh', 'try 2', 'refresh', 'try 3']);
  await expect(retryWhenFenced(router, async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
  await expect(retryWhenFenced(router, async () => Promise.reject(fenced()), { attempts: 2, delayMs: 1 })).rejects.toBeInstanceOf(UnavailableError);
});

test('retryActivitiesWhenFenced runs a fenced activity again with the same arguments, after a refresh; other failures pass at once', async () => {
  let refreshed = 0;
  const calls: unknown[][] = [];
  const acts = retryActivitiesWhenFenced(
    { refresh: async () => void refreshed++ },
    {
      async record(id: string, n: number) {
        calls.push([id, n]);
        if (calls.length === 1) throw fenced();
        return `${id}:${n}`;
      },
      async broken() {
        throw new Error('boom');
      },
    },
  );
  expect(await acts.record('r1', 2)).toBe('r1:2');
  expect(calls).toEqual([['r1', 2], ['r1', 2]]);
  expect(refreshed).toBe(1);
  await expect(acts.broken()).rejects.toThrow('boom');
});
