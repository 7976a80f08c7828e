import client from 'prom-client';

/**
 * Pipeline metrics of the worker (ADR 0018), labelled by status only: run ids, repositories and
 * commits are never labels, so the number of series stays bounded however many runs there are.
 */

const runsFinished = new client.Counter({ name: 'dotgit_runs_finished_total', help: 'Runs that ended, by status', labelNames: ['status'] });
const runDuration = new client.Histogram({
  name: 'dotgit_run_duration_seconds',
  help: 'From a run being queued (the push) to its end, by status',
  labelNames: ['status'],
  buckets: [1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
});
const stepsFinished = new client.Counter({ name: 'dotgit_steps_finished_total', help: 'Steps whose command ran to an end, by status', labelNames: ['status'] });
const stepDuration = new client.Histogram({
  name: 'dotgit_step_duration_seconds',
  help: 'From a step starting on its host to its result being recorded, by status',
  labelNames: ['status'],
  buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
});
const pushToStepStart = new client.Histogram({
  name: 'dotgit_push_to_step_start_seconds',
  help: "From a run being queued (the push) to a job's first step starting in its sandbox host",
  buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900],
});

const sandboxStart = new client.Histogram({
  name: 'dotgit_sandbox_start_seconds',
  help: "From a step's activity starting on its sandbox host to its command running inside the sandbox (checkout, secrets, cache restore and the sandbox's boot), by driver",
  labelNames: ['driver'],
  buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
});

/** Statuses a run or step ends with; anything else is counted as `other` (bounded labels). */
const ENDS = new Set(['success', 'failure', 'cancelled', 'skipped', 'rolled_back', 'rejected']);
const statusLabel = (s: string) => (ENDS.has(s) ? s : 'other');

export function observeRunFinished(status: string, secondsSinceQueued: number | null | undefined): void {
  runsFinished.inc({ status: statusLabel(status) });
  if (typeof secondsSinceQueued === 'number' && secondsSinceQueued >= 0) runDuration.observe({ status: statusLabel(status) }, secondsSinceQueued);
}

export function observeStepFinished(status: string, seconds: number | null | undefined): void {
  stepsFinished.inc({ status: statusLabel(status) });
  if (typeof seconds === 'number' && seconds >= 0) stepDuration.observe({ status: statusLabel(status) }, seconds);
}

export function observeStepStart(secondsSincePush: number | null | undefined): void {
  if (typeof secondsSincePush === 'number' && secondsSincePush >= 0) pushToStepStart.observe(secondsSincePush);
}

/** A step's command began running in its sandbox, `seconds` after its activity started (driver: runsc, bwrap or none). */
export function observeSandboxStart(driver: string, seconds: number): void {
  sandboxStart.observe({ driver }, seconds);
}
