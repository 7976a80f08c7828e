/**
 * Why a run, a job or a deploy waits (issue 17 item 8; ADR 0037), told from what the rows already
 * say when they are read: no activity per wait, so waits cost no Temporal actions. Pure.
 *
 *   concurrency  a run queued in its group (runs.message) or a job in a job-level group (steps.waiting)
 *   needs        a job whose needs have not all ended (steps.needs, migration 0040)
 *   sandbox      a job that may start but no sandbox host has taken its first step yet (with the
 *                sandbox queue's backlog when Temporal tells it)
 *   approval     a deploy waiting for a person
 *   environment  a deploy queued behind the deploy that holds its environment's lock
 */
export type PendingReason = { reason: 'concurrency' | 'needs' | 'sandbox' | 'approval' | 'environment'; message: string };

export interface PendingStep {
  job: string;
  status: string;
  waiting?: string | null;
  needs?: string[] | null;
}

const ENDED = new Set(['success', 'failure', 'cancelled', 'skipped']);

/** The jobs of `needs` that have not ended (a need is a job's name in the file: its matrix instances count). */
function openNeeds(needs: string[], steps: PendingStep[]): string[] {
  return needs.filter((n) => steps.some((s) => (s.job === n || s.job.startsWith(`${n} (`)) && !ENDED.has(s.status)));
}

/** Each job's pending reason while it waits in a running run (jobs that run or ended have none). */
export function jobPendingReasons(runStatus: string, steps: PendingStep[], backlog?: number): Map<string, PendingReason> {
  const out = new Map<string, PendingReason>();
  if (runStatus !== 'running') return out;
  const jobs = [...new Set(steps.map((s) => s.job))];
  for (const job of jobs) {
    const own = steps.filter((s) => s.job === job);
    if (!own.every((s) => s.status === 'queued')) continue;
    const waiting = own.find((s) => s.waiting)?.waiting;
    if (waiting) {
      out.set(job, { reason: 'concurrency', message: waiting });
      continue;
    }
    const open = openNeeds(own[0].needs ?? [], steps);
    if (open.length > 0) out.set(job, { reason: 'needs', message: `waiting for needs: ${open.join(', ')}` });
    else out.set(job, { reason: 'sandbox', message: backlog === undefined ? 'waiting for a sandbox host' : `waiting for a sandbox host (backlog ${backlog})` });
  }
  return out;
}

/** A run's pending reason: its group while queued; while running with no step running, its first waiting job's. */
export function runPendingReason(run: { status: string; message?: string | null }, jobs: Map<string, PendingReason>, steps: PendingStep[]): PendingReason | null {
  if (run.status === 'queued') return run.message ? { reason: 'concurrency', message: run.message } : null;
  if (run.status !== 'running' || steps.some((s) => s.status === 'running')) return null;
  const first = steps.find((s) => jobs.has(s.job));
  return first ? jobs.get(first.job)! : null;
}

/** A deploy's pending reason: approval, or the environment lock held by an earlier deploy. */
export function deployPendingReason(status: string, environment: string, holder: string | undefined): PendingReason | null {
  if (status === 'waiting_approval') return { reason: 'approval', message: 'waiting for approval' };
  if (status === 'queued' && holder) return { reason: 'environment', message: `waiting for the environment lock of ${environment} held by deploy ${holder}` };
  return null;
}
