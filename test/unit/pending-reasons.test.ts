import { deployPendingReason, jobPendingReasons, runPendingReason } from '../../core/pending-reasons';

// Issue 17 item 8 (ADR 0037): why a run, a job or a deploy waits, told from its rows.

const steps = [
  { job: 'setup', status: 'running' },
  { job: 'build (linux)', status: 'queued', needs: ['setup'] },
  { job: 'ship', status: 'queued', needs: ['build'] },
  { job: 'deploy', status: 'queued', waiting: 'queued behind 1 holder in concurrency group prod' },
  { job: 'lint', status: 'queued' },
  { job: 'done', status: 'success' },
];

test('jobs: a job-level group, open needs (a matrix job by its name in the file), else a sandbox host with the backlog', () => {
  expect(Object.fromEntries(jobPendingReasons('running', steps, 3))).toEqual({
    'build (linux)': { reason: 'needs', message: 'waiting for needs: setup' },
    ship: { reason: 'needs', message: 'waiting for needs: build' },
    deploy: { reason: 'concurrency', message: 'queued behind 1 holder in concurrency group prod' },
    lint: { reason: 'sandbox', message: 'waiting for a sandbox host (backlog 3)' },
  });
  expect(jobPendingReasons('running', [{ job: 'a', status: 'queued' }]).get('a')).toEqual({ reason: 'sandbox', message: 'waiting for a sandbox host' });
  expect(jobPendingReasons('success', steps).size).toBe(0);
});

test('runs: queued in a group; running with nothing running: its first waiting job; else none', () => {
  expect(runPendingReason({ status: 'queued', message: 'queued behind 2 runs in concurrency group ci' }, new Map(), [])).toEqual({ reason: 'concurrency', message: 'queued behind 2 runs in concurrency group ci' });
  expect(runPendingReason({ status: 'queued', message: null }, new Map(), [])).toBeNull();
  const idle = steps.filter((s) => s.status !== 'running');
  expect(runPendingReason({ status: 'running' }, jobPendingReasons('running', idle, 0), idle)).toEqual({ reason: 'sandbox', message: 'waiting for a sandbox host (backlog 0)' });
  expect(runPendingReason({ status: 'running' }, jobPendingReasons('running', steps), steps)).toBeNull();
});

test('deploys: approval, or the environment lock held by an earlier deploy', () => {
  expect(deployPendingReason('waiting_approval', 'prod', undefined)).toEqual({ reason: 'approval', message: 'waiting for approval' });
  expect(deployPendingReason('queued', 'prod', 'deploy:t:r:1')).toEqual({ reason: 'environment', message: 'waiting for the environment lock of prod held by deploy deploy:t:r:1' });
  expect(deployPendingReason('queued', 'prod', undefined)).toBeNull();
  expect(deployPendingReason('running', 'prod', undefined)).toBeNull();
});
