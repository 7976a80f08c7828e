import { withDeadline } from '../../core/deadline';

// core/deadline.ts: the one "give up waiting after ms" the processes share (Redis calls of the
// gateway's limiter, the api's read routing and live events; the provisioner's start-up probes).

class Late extends Error {}

test('a promise settling in time is what the caller gets, value or error', async () => {
  await expect(withDeadline(Promise.resolve(7), 1000, () => new Late())).resolves.toBe(7);
  await expect(withDeadline(Promise.reject(new Error('no')), 1000, () => new Late())).rejects.toThrow('no');
});

test('past the deadline the caller gets the late error; the promise failing afterwards is nobody\'s unhandled rejection', async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  try {
    let fail!: (err: Error) => void;
    const slow = new Promise<number>((_, reject) => (fail = reject));
    const started = Date.now();
    await expect(withDeadline(slow, 50, () => new Late('late'))).rejects.toBeInstanceOf(Late);
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    fail(new Error('too late'));
    await new Promise((r) => setTimeout(r, 20));
    expect(unhandled).toEqual([]);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});

test('the timer neither outlives a settled promise nor keeps the process alive', async () => {
  const spy = jest.spyOn(global, 'clearTimeout');
  await withDeadline(Promise.resolve(1), 60_000, () => new Late());
  expect(spy).toHaveBeenCalledTimes(1);
  spy.mockRestore();
  const timers = jest.spyOn(global, 'setTimeout');
  void withDeadline(new Promise<void>(() => undefined), 60_000, () => new Late()).catch(() => undefined);
  const timer = timers.mock.results[0]!.value as NodeJS.Timeout;
  expect(timer.hasRef()).toBe(false);
  clearTimeout(timer);
  timers.mockRestore();
});
