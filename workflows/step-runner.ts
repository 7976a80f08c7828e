import { ActivityFailure, ApplicationFailure, isCancellation, patched, proxyActivities, sleep, TimeoutFailure } from '@temporalio/workflow';
import type { OrchestrationActivities } from '../activities/orchestration-activities';
import type { SandboxActivities } from '../activities/sandbox-activities';
import { ORCHESTRATION_QUEUE, SANDBOX_QUEUE, type StepInput, type StepResult, type StepStatus } from '../core/run-types';
import type { StepSpec } from '../core/pipeline-spec';

const records = proxyActivities<OrchestrationActivities>({
  taskQueue: ORCHESTRATION_QUEUE,
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
});

/** Per-step timeouts are enforced inside the sandbox; this is the outer bound plus setup time. */
const STEP_ACTIVITY_TIMEOUT_MS = 3 * 60 * 60 * 1000;
export const sandboxSteps = proxyActivities<SandboxActivities>({
  taskQueue: SANDBOX_QUEUE,
  startToCloseTimeout: STEP_ACTIVITY_TIMEOUT_MS,
  // A worker that dies mid-step stops heartbeating; Temporal then retries the step elsewhere.
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '2 seconds', maximumAttempts: 3 },
  cancellationType: 'WAIT_CANCELLATION_COMPLETED',
});

/**
 * How long a step pinned to its host may wait for that host to take it: no worker polling the host's
 * own queue this long means the host is gone (Temporal does not retry a schedule-to-start timeout).
 */
export const HOST_SCHEDULE_TO_START = '30 seconds';

/**
 * A job's later steps, on the queue of the host that holds its workspace. A host that dies mid-step
 * stops heartbeating; Temporal's retry then waits on the same queue, where a host restarted with
 * the same id (its workspace kept) takes it, or the schedule-to-start timeout says the host is lost.
 */
function pinnedSteps(queue: string) {
  return proxyActivities<SandboxActivities>({
    taskQueue: queue,
    startToCloseTimeout: STEP_ACTIVITY_TIMEOUT_MS,
    scheduleToStartTimeout: HOST_SCHEDULE_TO_START,
    heartbeatTimeout: '20 seconds',
    retry: { initialInterval: '2 seconds', maximumAttempts: 3 },
    cancellationType: 'WAIT_CANCELLATION_COMPLETED',
  });
}

/** A job's workspace clean-up on its host: best effort (a host that went away took the workspace with it). */
export async function cleanupPinnedWorkspace(queue: string, args: { runId: string; job: string }): Promise<void> {
  const cleanup = proxyActivities<SandboxActivities>({
    taskQueue: queue,
    startToCloseTimeout: '1 minute',
    scheduleToStartTimeout: HOST_SCHEDULE_TO_START,
    retry: { initialInterval: '1 second', maximumAttempts: 3 },
  });
  try {
    await cleanup.cleanupWorkspace(args);
  } catch (err) {
    if (isCancellation(err)) throw err;
    // Left for the host's orphan pruning (activities/sandbox/orphans.ts) when it comes back.
  }
}

/** Why a pinned step's host counts as lost, or undefined for any other failure. */
function hostLoss(err: unknown): string | undefined {
  if (!(err instanceof ActivityFailure)) return undefined;
  const cause = err.cause;
  if (cause instanceof TimeoutFailure && cause.timeoutType === 'SCHEDULE_TO_START') return `it took no task for ${HOST_SCHEDULE_TO_START}`;
  if (cause instanceof TimeoutFailure && cause.timeoutType === 'HEARTBEAT') return 'its step stopped heartbeating';
  if (cause instanceof ApplicationFailure && (cause.type === 'WorkspaceLost' || cause.type === 'HostStopped')) return cause.message;
  return undefined;
}

/** One step of a job, minus what changes per attempt. */
export type StepRequest = Omit<StepInput, 'attempt' | 'step'> & { step: StepSpec };

/** A host a job is pinned to: its id and its own task queue. */
export interface HostPin {
  host: string;
  queue: string;
}

/** How a step ended, where it ran, and (pinned steps only) whether its host was lost instead. */
export interface StepOutcome {
  status: StepStatus;
  pin?: HostPin;
  /** `host <id> lost (why)`: the step did not end; the job must start again on another host. */
  lost?: string;
  /** What a successful step wrote to `$DOTGIT_OUTPUT` (issue 17). */
  outputs?: Record<string, string>;
  /** A job's first step that restored its cache: the key and whether it was found as is (issue 17). */
  cache?: { key: string; hit: boolean };
}

/**
 * Runs a step in the sandbox; `retry: N` re-runs a step that exits non-zero up to N more times,
 * with exponential backoff. A step that cannot run at all is recorded as failed with the reason.
 */
export async function runStepWithRetries(req: StepRequest): Promise<StepStatus> {
  return (await runStep(req)).status;
}

/**
 * `runStepWithRetries` on the shared sandbox queue, or pinned to a host's own queue (a job's later
 * steps): then losing the host is answered as `lost`, not recorded as the step's failure. With
 * `pinRetries`, a first step's `retry:` re-runs stay on the host its first run answered from.
 */
export async function runStep(req: StepRequest, pinned?: HostPin, o: { pinRetries?: boolean } = {}): Promise<StepOutcome> {
  const { step, ...rest } = req;
  // Issue 10: the step's attempt number counts on after Temporal's re-runs of the activity (a lost
  // worker), which the activity reports in its result, so a `retry:` re-run never repeats a number.
  const countsReruns = patched('step-attempt-numbers');
  let pin = pinned;
  let steps = pin ? pinnedSteps(pin.queue) : sandboxSteps;
  let attempt = 1;
  let ranOn: HostPin | undefined;
  for (let run = 1; run <= step.retry + 1; run++) {
    if (run > 1) await sleep(Math.min(2 ** (run - 2) * 1000, 60_000));
    let result: StepResult;
    try {
      result = await steps.runStep({ ...rest, step: { name: step.name, run: step.run, env: step.env, timeoutMs: step.timeoutMs }, attempt, ...(pin ? { pinned: true } : {}) });
    } catch (err) {
      if (isCancellation(err)) throw err;
      const lost = pin ? hostLoss(err) : undefined;
      if (pin && lost) return { status: 'failure', lost: `host ${pin.host} lost (${lost})` };
      // The step could not run at all (no sandbox, checkout failed, Temporal's retries used up).
      const reason = err instanceof ActivityFailure && err.cause ? err.cause.message : (err as Error).message;
      await records.failStep({ runId: req.runId, tenantId: req.tenantId, job: req.job.name, step: step.name, message: reason });
      return { status: 'failure', pin: ranOn };
    }
    if (result.host && result.hostQueue) ranOn = { host: result.host, queue: result.hostQueue };
    if (result.cancelled) return { status: 'cancelled', pin: ranOn };
    if (result.exitCode === 0) return { status: 'success', pin: ranOn, ...(result.outputs ? { outputs: result.outputs } : {}), ...(result.cache ? { cache: result.cache } : {}) };
    if (o.pinRetries && !pin && ranOn) {
      pin = ranOn;
      steps = pinnedSteps(pin.queue);
    }
    attempt = countsReruns ? (result.attempt ?? attempt) + 1 : run + 1;
  }
  return { status: 'failure', pin: ranOn };
}

/** Runs steps in order until one does not succeed; answers the first non-success status, or success. */
export async function runSteps(base: Omit<StepRequest, 'step' | 'artifacts'>, stepList: StepSpec[]): Promise<StepStatus> {
  for (const step of stepList) {
    const status = await runStepWithRetries({ ...base, step, artifacts: [] });
    if (status !== 'success') return status;
  }
  return 'success';
}
