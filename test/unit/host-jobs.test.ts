import { HostJobs, jobSlots } from '../../activities/sandbox/host-jobs';

const ctx = {} as never;

test('a job counts from its first step to its clean-up; a first step without a result pins nothing', () => {
  const jobs = new HostJobs();
  jobs.stepStarted('/ws/a', true);
  expect(jobs.size).toBe(1);
  expect(jobs.holding).toBe(0); // its shared-queue slot holds it
  jobs.stepEnded('/ws/a', true, true);
  expect(jobs.holding).toBe(1); // between steps: it holds a place of its own
  jobs.stepStarted('/ws/a', false);
  jobs.stepEnded('/ws/a', false, true);
  jobs.ended('/ws/a');
  expect(jobs.size).toBe(0);
  jobs.stepStarted('/ws/b', true);
  jobs.stepEnded('/ws/b', true, false);
  expect(jobs.size).toBe(0);
});

test('a job with no step here for the idle period is forgotten; a running one never', () => {
  let now = 0;
  const jobs = new HostJobs(1000, () => now);
  jobs.stepStarted('/ws/idle', true);
  jobs.stepEnded('/ws/idle', true, true);
  jobs.stepStarted('/ws/busy', false);
  now = 5000;
  expect(jobs.list()).toEqual(['/ws/busy']);
});

test('shared-queue slots count jobs: no new job while the jobs here fill the limit, one as soon as a job ends', async () => {
  const jobs = new HostJobs();
  const slots = jobSlots(2, jobs);
  const abort = new AbortController();
  expect(slots.numSlots).toBe(2);
  // Two jobs between steps fill the host.
  for (const ws of ['/ws/1', '/ws/2']) {
    jobs.stepStarted(ws, true);
    jobs.stepEnded(ws, true, true);
  }
  expect(slots.tryReserveSlot(ctx)).toBeNull();
  let granted = false;
  const waiting = slots.reserveSlot(ctx, abort.signal).then(() => (granted = true));
  await new Promise((r) => setTimeout(r, 20));
  expect(granted).toBe(false);
  jobs.ended('/ws/1');
  await waiting;
  expect(granted).toBe(true);
  // The permit itself takes the room until released.
  expect(slots.tryReserveSlot(ctx)).toBeNull();
  slots.releaseSlot(ctx);
  expect(slots.tryReserveSlot(ctx)).not.toBeNull();
});

test('an aborted reservation rejects with the signal reason', async () => {
  const jobs = new HostJobs();
  const slots = jobSlots(1, jobs);
  jobs.stepStarted('/ws/1', false);
  const abort = new AbortController();
  const waiting = slots.reserveSlot(ctx, abort.signal);
  abort.abort(new Error('no longer needed'));
  await expect(waiting).rejects.toThrow('no longer needed');
});
