import { ActivityFailure, isCancellation, patched, proxyActivities, sleep } from '@temporalio/workflow';
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

/** One step of a job, minus what changes per attempt. */
export type StepRequest = Omit<StepInput, 'attempt' | 'step'> & { step: StepSpec };

/**
 * Runs a step in the sandbox; `retry: N` re-runs a step that exits non-zero up to N more times,
 * with exponential backoff. A step that cannot run at all is recorded as failed with the reason.
 */
export async function runStepWithRetries(req: StepRequest): Promise<StepStatus> {
  const { step, ...rest } = req;
  // Issue 10: the step's attempt number counts on after Temporal's re-runs of the activity (a lost
  // worker), which the activity reports in its result, so a `retry:` re-run never repeats a number.
  const countsReruns = patched('step-attempt-numbers');
  let attempt = 1;
  for (let run = 1; run <= step.retry + 1; run++) {
    if (run > 1) await sleep(Math.min(2 ** (run - 2) * 1000, 60_000));
    let result: StepResult;
    try {
      result = await sandboxSteps.runStep({ ...rest, step: { name: step.name, run: step.run, env: step.env, timeoutMs: step.timeoutMs }, attempt });
    } catch (err) {
      if (isCancellation(err)) throw err;
      // The step could not run at all (no sandbox, checkout failed, Temporal's retries used up).
      const reason = err instanceof ActivityFailure && err.cause ? err.cause.message : (err as Error).message;
      await records.failStep({ runId: req.runId, tenantId: req.tenantId, job: req.job.name, step: step.name, message: reason });
      return 'failure';
    }
    if (result.cancelled) return 'cancelled';
    if (result.exitCode === 0) return 'success';
    attempt = countsReruns ? (result.attempt ?? attempt) + 1 : run + 1;
  }
  return 'failure';
}

/** Runs steps in order until one does not succeed; answers the first non-success status, or success. */
export async function runSteps(base: Omit<StepRequest, 'step' | 'artifacts'>, stepList: StepSpec[]): Promise<StepStatus> {
  for (const step of stepList) {
    const status = await runStepWithRetries({ ...base, step, artifacts: [] });
    if (status !== 'success') return status;
  }
  return 'success';
}
