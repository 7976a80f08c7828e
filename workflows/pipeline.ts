import { ApplicationFailure, CancellationScope, CancelledFailure, condition, getExternalWorkflowHandle, isCancellation, patched, proxyActivities, setHandler, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { ConcurrencyActivities } from '../activities/concurrency-activities';
import { cancelJobSignal, concurrencyGroupWorkflowId, groupMemberId, groupPositionSignal, groupWaitMessage, jobGroupGrantedSignal, jobGroupPositionSignal, jobGroupWaitMessage, lockGrantedSignal, releaseLockSignal, type RunConcurrency } from '../core/concurrency-types';
import type { OrchestrationActivities } from '../activities/orchestration-activities';
import { ORCHESTRATION_QUEUE, type PipelineInput, type RunResult, type StepStatus } from '../core/run-types';
import type { JobSpec, PipelineSpec, StepSpec } from '../core/pipeline-spec';
import { MAX_STEP_OUTPUT_BYTES, resolveOutputs } from '../core/pipeline-matrix';
import { SEARCH_ATTRIBUTES } from '../core/search-attributes';
import { cleanupPinnedWorkspace, runStep, runStepWithRetries, sandboxSteps, type HostPin, type StepRequest } from './step-runner';
import { startWebhookDispatch } from './webhooks';

const records = proxyActivities<OrchestrationActivities>({
  taskQueue: ORCHESTRATION_QUEUE,
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
});

const groups = proxyActivities<ConcurrencyActivities>({
  taskQueue: ORCHESTRATION_QUEUE,
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
});

/** CI pipeline of one pushed ref: load the file at the commit, run its jobs as a DAG, record results. */
export async function pipeline(input: PipelineInput): Promise<RunResult> {
  // `workflow_run` webhooks (added after the first recorded histories, hence `patched`). Not awaited
  // here: the child's start goes out with the first activity, so it costs the run no latency.
  const webhooks = patched('webhooks-workflow-run');
  const announceRun = (action: 'requested' | 'completed') =>
    startWebhookDispatch({ tenantId: input.tenantId, repoId: input.repoId, events: [{ event: 'workflow_run', action, runId: input.runId }] }, `webhook:${input.runId}:${action}`);
  // Issue 11: only a repository with a workflow_run hook gets the two dispatch children (each costs
  // Temporal actions); loadPipeline tells, so `requested` goes out once it has answered.
  const onlyHooked = webhooks && patched('webhooks-only-when-hooked');
  let requested = webhooks && !onlyHooked ? announceRun('requested') : undefined;
  let hooked: boolean | undefined;
  const onLoaded = (workflowRunHooks = true) => {
    hooked = workflowRunHooks;
    if (onlyHooked && hooked) requested = announceRun('requested');
  };
  // The run's status as a search attribute, so the Web UI can filter runs by it (also patched in later).
  const statusAttribute = patched('status-search-attribute');
  if (statusAttribute) upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.status, value: 'running' }]);
  let result: RunResult;
  /** The group lock this run queued at (issue 17 item 4): released however the run ends. */
  const group: { lockId?: string } = {};
  try {
    result = await runPipeline(input, onLoaded, group);
    // A cancel that arrived while the last activity was finishing still counts.
    if (CancellationScope.current().consideredCancelled) result = { status: 'cancelled' };
  } catch (err) {
    // Whatever went wrong, the run must end in a terminal state, never stay queued or running.
    result = isCancellation(err) ? { status: 'cancelled' } : { status: 'failure', message: err instanceof Error ? err.message : String(err) };
  }
  // Recording the end must happen even when the run was cancelled.
  await CancellationScope.nonCancellable(async () => {
    if (statusAttribute) upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.status, value: result.status }]);
    // The group goes on to its next run (a run cancelled while waiting leaves its queue the same way).
    if (group.lockId) await getExternalWorkflowHandle(group.lockId).signal(releaseLockSignal, input.runId).catch(() => undefined);
    await records.finishRun({ runId: input.runId, tenantId: input.tenantId, status: result.status, message: result.message });
    // Added after the first recorded histories: `patched` keeps those replaying unchanged.
    if (patched('invalidate-repo-caches')) await records.invalidateRepoCaches({ tenant: input.tenant, repo: input.repo });
    // Not known (loading never answered): announce, as before.
    if (webhooks && (!onlyHooked || hooked !== false)) {
      await (requested ??= announceRun('requested'));
      await announceRun('completed');
    }
  });
  // Issue 14 (patched: earlier histories completed with the result): once everything is recorded, a
  // failed run is a failed workflow execution and a cancelled one a cancelled execution, so the Web
  // UI's status filters and Failures view tell the truth. The failure carries the result as details.
  if (patched('failed-run-fails-workflow')) {
    if (result.status === 'failure') throw ApplicationFailure.nonRetryable(result.message ?? 'the run failed', 'RunFailed', result);
    if (result.status === 'cancelled' && CancellationScope.current().consideredCancelled) throw new CancelledFailure('the run was cancelled');
  }
  return result;
}

async function runPipeline(input: PipelineInput, onLoaded: (workflowRunHooks?: boolean) => void, group: { lockId?: string }): Promise<RunResult> {
  const loaded = await records.loadPipeline(input);
  onLoaded(loaded.workflowRunHooks);
  if (!loaded.ok) return { status: 'failure', message: loaded.message };
  const spec = loaded.spec;
  // Issue 17 item 4 (patched: earlier histories know no groups): the run stays queued until its group grants it.
  if (spec.concurrency && patched('concurrency-groups')) await waitForGroup(input, spec.concurrency, group);
  await records.startRun({ runId: input.runId, tenantId: input.tenantId, jobs: spec.jobs });
  const outcome: Record<string, StepStatus> = {};
  // Issue 17 (patched: earlier histories know no matrix, outputs or fail-fast): see runDag.
  const matrixAndOutputs = patched('matrix-and-outputs');
  // Issue 17 item 5 (patched: earlier histories keep no outputs and know no attempts): job outputs are
  // kept for later attempts, and a re-run reuses the jobs whose steps all succeeded before.
  const attempts = matrixAndOutputs && patched('run-attempts');
  const reused = attempts && (input.attempt ?? 1) > 1 ? await records.reusedJobs({ runId: input.runId, tenantId: input.tenantId }) : {};
  /** Why a dynamic matrix job failed before it had instances (issue 17 item 1): said in the run's message. */
  const problems: Record<string, string> = {};
  await runDag(input, spec, outcome, matrixAndOutputs, attempts ? { reused } : undefined, problems);
  if (spec.jobs.every((j) => outcome[j.name] === 'success')) return { status: 'success' };
  // Matrix instances that fail-fast cancelled leave a failed run (the workflow's own cancel is told apart above).
  if (matrixAndOutputs && Object.values(outcome).includes('failure')) {
    const why = Object.entries(problems).map(([job, problem]) => `; ${job}: ${problem}`).join('');
    return { status: 'failure', message: `failed jobs: ${spec.jobs.filter((j) => outcome[j.name] === 'failure').map((j) => j.name).join(', ')}${why}` };
  }
  if (Object.values(outcome).includes('cancelled')) return { status: 'cancelled' };
  const failedJobs = spec.jobs.filter((j) => outcome[j.name] !== 'success').map((j) => j.name);
  return { status: 'failure', message: `failed jobs: ${failedJobs.join(', ')}` };
}

/**
 * Queues the run in its concurrency group (workflows/concurrency-group.ts) and waits for the grant;
 * while it waits, its message says how many runs are ahead (issue 17 item 8). A cancel (by hand, or
 * by a newer run with cancel-in-progress) ends the wait as a cancelled run.
 */
async function waitForGroup(input: PipelineInput, concurrency: RunConcurrency, group: { lockId?: string }): Promise<void> {
  let granted = false;
  let ahead: number | undefined;
  setHandler(lockGrantedSignal, () => {
    granted = true;
  });
  setHandler(groupPositionSignal, (n) => {
    ahead = n;
  });
  group.lockId = concurrencyGroupWorkflowId(input.tenant, input.repo, concurrency.group);
  const request = { runId: input.runId, requestedAt: workflowInfo().runStartTime.getTime(), cancelInProgress: concurrency.cancelInProgress };
  await groups.requestConcurrencyGroup({ lockWorkflowId: group.lockId, request });
  let shown: number | undefined;
  for (;;) {
    await condition(() => granted || ahead !== shown);
    if (granted) break;
    shown = ahead;
    await groups.setRunWaitMessage({ runId: input.runId, tenantId: input.tenantId, message: groupWaitMessage(shown ?? 0, concurrency.group) });
  }
  if (shown !== undefined) await groups.setRunWaitMessage({ runId: input.runId, tenantId: input.tenantId, message: null });
}

/** What the groups of a run's job-level `concurrency:` told it (signals), by job. */
interface JobGroupState {
  granted: Set<string>;
  ahead: Map<string, number>;
  cancelled: Set<string>;
  scopes?: Map<string, CancellationScope>;
}

function jobGroupState(): JobGroupState {
  const state: JobGroupState = { granted: new Set(), ahead: new Map(), cancelled: new Set() };
  setHandler(jobGroupGrantedSignal, (job) => void state.granted.add(job));
  setHandler(jobGroupPositionSignal, (job, n) => void state.ahead.set(job, n));
  // A newer job of the group with cancel-in-progress: this job ends `cancelled` (waiting or running).
  setHandler(cancelJobSignal, (job) => {
    state.cancelled.add(job);
    state.scopes?.get(job)?.cancel();
  });
  return state;
}

/**
 * A job with `concurrency:` (ADR 0037): queued at its group's lock as a member of its own (the run
 * id and the job), run once granted, the group released however the job ends. While it waits, its
 * steps' pending reason says how many are ahead.
 */
async function runJobInGroup(input: PipelineInput, job: JobSpec, concurrency: RunConcurrency, state: JobGroupState, body: () => Promise<StepStatus>): Promise<StepStatus> {
  const lockId = concurrencyGroupWorkflowId(input.tenant, input.repo, concurrency.group);
  const member = groupMemberId(input.runId, job.name);
  try {
    await groups.requestConcurrencyGroup({ lockWorkflowId: lockId, request: { runId: input.runId, job: job.name, requestedAt: workflowInfo().runStartTime.getTime(), cancelInProgress: concurrency.cancelInProgress } });
    let shown: number | undefined;
    for (;;) {
      await condition(() => state.granted.has(job.name) || state.ahead.get(job.name) !== shown);
      if (state.granted.has(job.name)) break;
      shown = state.ahead.get(job.name);
      await groups.setJobWaitMessage({ runId: input.runId, tenantId: input.tenantId, job: job.name, message: jobGroupWaitMessage(shown ?? 0, concurrency.group) });
    }
    if (shown !== undefined) await groups.setJobWaitMessage({ runId: input.runId, tenantId: input.tenantId, job: job.name, message: null });
    return await body();
  } finally {
    await CancellationScope.nonCancellable(() => getExternalWorkflowHandle(lockId).signal(releaseLockSignal, member).catch(() => undefined));
  }
}

/** What a job instance learns while it runs: its steps' outputs, and the outputs of the jobs it needs. */
interface JobContext {
  steps: Record<string, Record<string, string>>;
  needs: Record<string, Record<string, string>>;
}

/** A job's declared outputs also travel in Temporal's history: beyond this many bytes, the rest are dropped. */
const MAX_JOB_OUTPUT_BYTES = 4 * MAX_STEP_OUTPUT_BYTES;

/** The job's declared `outputs:`, its steps' outputs filled in. */
function jobOutputsOf(job: JobSpec, ctx: JobContext): Record<string, string> {
  const out: Record<string, string> = {};
  let bytes = 0;
  for (const [key, template] of Object.entries(job.outputs ?? {})) {
    const value = resolveOutputs(template, { steps: ctx.steps });
    bytes += key.length + value.length;
    if (bytes > MAX_JOB_OUTPUT_BYTES) break;
    out[key] = value;
  }
  return out;
}

/** `needs.<job>.outputs.*` of a job: by the names in the file; a matrix job's instances' outputs merged in order. */
function needsContext(spec: PipelineSpec, job: JobSpec, outputs: Record<string, Record<string, string>>): Record<string, Record<string, string>> {
  const needs: Record<string, Record<string, string>> = {};
  for (const need of spec.jobs.filter((j) => job.needs.includes(j.name))) {
    const name = need.matrix?.job ?? need.name;
    needs[name] = { ...needs[name], ...outputs[need.name] };
  }
  return needs;
}

/** A step with `${{ steps.* }}` and `${{ needs.* }}` filled in (one pass: a value is never expanded again). */
function resolveStep(step: StepSpec, ctx: JobContext): StepSpec {
  return { ...step, run: resolveOutputs(step.run, ctx), env: Object.fromEntries(Object.entries(step.env).map(([k, v]) => [k, resolveOutputs(v, ctx)])) };
}

/**
 * Starts every job whose needs have succeeded, as soon as they have; a failed need skips its
 * dependants. With `matrixAndOutputs` (issue 17): a matrix job runs at most `max-parallel` of its
 * instances at once, and with fail-fast one failed instance cancels its running siblings and skips
 * those not started; each job's declared outputs are kept for the jobs that need it.
 */
async function runDag(
  input: PipelineInput,
  spec: PipelineSpec,
  outcome: Record<string, StepStatus>,
  matrixAndOutputs = false,
  attempts?: { reused: Record<string, Record<string, string>> },
  problems: Record<string, string> = {},
): Promise<void> {
  const running = new Map<string, Promise<void>>();
  const pending = new Set(spec.jobs.map((j) => j.name));
  const outputs: Record<string, Record<string, string>> = {};
  // A re-run's reused jobs count as succeeded, with the outputs their attempt kept.
  for (const [job, kept] of Object.entries(attempts?.reused ?? {})) {
    if (!pending.delete(job)) continue;
    outcome[job] = 'success';
    outputs[job] = kept;
  }
  const scopes = new Map<string, CancellationScope>();
  /** Matrix jobs (by their name in the file) that one failed instance stopped. */
  const failedFast = new Set<string>();
  // Job-level concurrency groups (ADR 0037; patched: earlier histories have none): what the groups told this run.
  const jobGroups = spec.jobs.some((j) => j.concurrency) && patched('job-concurrency') ? jobGroupState() : undefined;
  const runningOf = (matrixJob: string) => spec.jobs.filter((j) => j.matrix?.job === matrixJob && running.has(j.name)).length;
  const startJob = (job: JobSpec): Promise<void> => {
    const ctx: JobContext = { steps: {}, needs: needsContext(spec, job, outputs) };
    const scope = new CancellationScope();
    scopes.set(job.name, scope);
    if (jobGroups) jobGroups.scopes = scopes;
    return scope
      .run(() => (jobGroups && job.concurrency ? runJobInGroup(input, job, job.concurrency, jobGroups, () => runJob(input, job, ctx)) : runJob(input, job, ctx)))
      .catch((err: unknown) => {
        // Only fail-fast and a job-level group's newer job cancel a single job's scope; the run's own cancel goes on up.
        const single = (job.matrix && failedFast.has(job.matrix.job)) || jobGroups?.cancelled.has(job.name);
        if (isCancellation(err) && single && !CancellationScope.current().consideredCancelled) return 'cancelled' as const;
        throw err;
      })
      .then((status) => {
        outcome[job.name] = status;
        running.delete(job.name);
        scopes.delete(job.name);
        if (status === 'success' && job.outputs) outputs[job.name] = jobOutputsOf(job, ctx);
        const m = job.matrix;
        if (status === 'failure' && m?.failFast && !failedFast.has(m.job)) {
          failedFast.add(m.job);
          for (const sibling of spec.jobs) if (sibling.matrix?.job === m.job) scopes.get(sibling.name)?.cancel();
        }
        // Kept for a later attempt that reuses this job (before the jobs that need it start).
        if (attempts && status === 'success' && job.outputs) {
          return records.recordJobOutputs({ runId: input.runId, tenantId: input.tenantId, job: job.name, outputs: outputs[job.name], attempt: input.attempt ?? 1 });
        }
      });
  };
  /**
   * Issue 17 item 1: a dynamic matrix job, once its needs succeeded, becomes its instances (an
   * activity reads the output as JSON and makes their step rows); they take its place in the DAG
   * and in the needs of the jobs after it, so max-parallel, fail-fast and outputs work as for a
   * written matrix. A matrix that cannot be read fails the job, not the workflow.
   */
  const expandJob = async (job: JobSpec, dyn: NonNullable<JobSpec['dynamicMatrix']>): Promise<void> => {
    const needs = needsContext(spec, job, outputs);
    const json = needs[dyn.job]?.[dyn.output] ?? '';
    // A matrix written axis by axis (ADR 0044; patched: earlier histories have none): each key's output.
    const values = dyn.from && patched('matrix-fromjson-axes') ? Object.fromEntries(Object.entries(dyn.from).map(([key, src]) => [key, needs[src.job]?.[src.output] ?? ''])) : undefined;
    const others = spec.jobs.filter((j) => j.name !== job.name).map((j) => j.name);
    const expanded = await records.expandMatrixJob({ runId: input.runId, tenantId: input.tenantId, job, json, otherJobs: others, ...(values ? { values } : {}) });
    running.delete(job.name);
    if (!expanded.ok) {
      outcome[job.name] = 'failure';
      problems[job.name] = expanded.message;
      return;
    }
    const names = expanded.jobs.map((j) => j.name);
    spec.jobs.splice(spec.jobs.indexOf(job), 1, ...expanded.jobs);
    for (const j of spec.jobs) if (j.needs.includes(job.name)) j.needs = j.needs.flatMap((n) => (n === job.name ? names : [n]));
    for (const instance of expanded.jobs) {
      // A re-run reuses the instances whose steps all succeeded before, as any job.
      const kept = attempts?.reused[instance.name];
      if (kept) {
        outcome[instance.name] = 'success';
        outputs[instance.name] = kept;
      } else pending.add(instance.name);
    }
  };
  while (pending.size > 0) {
    // A copy: a dynamic matrix job's expansion replaces it in spec.jobs while this loop awaits.
    for (const job of [...spec.jobs]) {
      if (!pending.has(job.name)) continue;
      const needs = job.needs.map((n) => outcome[n]);
      if (matrixAndOutputs && job.matrix && failedFast.has(job.matrix.job)) {
        pending.delete(job.name);
        outcome[job.name] = 'skipped';
        await records.skipJob({ runId: input.runId, tenantId: input.tenantId, job: job.name });
        continue;
      }
      if (needs.some((s) => s !== undefined && s !== 'success')) {
        pending.delete(job.name);
        outcome[job.name] = 'skipped';
        await records.skipJob({ runId: input.runId, tenantId: input.tenantId, job: job.name });
        continue;
      }
      if (needs.every((s) => s === 'success')) {
        if (job.dynamicMatrix && patched('dynamic-matrix')) {
          pending.delete(job.name);
          running.set(job.name, expandJob(job, job.dynamicMatrix));
          continue;
        }
        if (matrixAndOutputs) {
          if (job.matrix?.maxParallel !== undefined && runningOf(job.matrix.job) >= job.matrix.maxParallel) continue;
          pending.delete(job.name);
          running.set(job.name, startJob(job));
          continue;
        }
        pending.delete(job.name);
        running.set(
          job.name,
          runJob(input, job).then((status) => {
            outcome[job.name] = status;
            running.delete(job.name);
          }),
        );
      }
    }
    if (running.size === 0) break;
    await Promise.race(running.values());
  }
  await Promise.all(running.values());
}

async function runJob(input: PipelineInput, job: JobSpec, ctx?: JobContext): Promise<StepStatus> {
  // Issue 11 (added after the recorded histories up to v6): a job's steps stay on its first step's host.
  if (patched('job-host-queues')) return runPinnedJob(input, job, ctx);
  return runJobAnywhere(input, job);
}

/** How many times a job starts again from a fresh checkout after losing its host, before it fails. */
export const MAX_HOST_LOSSES = 2;

/**
 * A job pinned to its host (Temporal's worker-specific task queue pattern): the first step runs on
 * the shared sandbox queue and answers with its host's own queue; the later steps, the artifact
 * upload (with the last step) and the clean-up go there. A lost host starts the job again from a
 * fresh checkout on the shared queue, with every step's log saying so; a job that ended is never run again.
 */
async function runPinnedJob(input: PipelineInput, job: JobSpec, ctx?: JobContext): Promise<StepStatus> {
  let restartNote: string | undefined;
  for (let losses = 0; ; losses++) {
    let pin: HostPin | undefined;
    let lost: { step: string; why: string } | undefined;
    let status: StepStatus = 'success';
    // A job that starts again from a fresh checkout runs its steps, and makes their outputs, anew.
    if (ctx) ctx.steps = {};
    // Issue 17 item 3 (patched): the job's cache is restored by its first step, saved by its last on a miss.
    const caching = job.cache !== undefined && patched('job-caches');
    let cacheKey: { key: string; hit: boolean } | undefined;
    try {
      for (const [index, written] of job.steps.entries()) {
        const step = ctx ? resolveStep(written, ctx) : written;
        const last = index === job.steps.length - 1;
        const cache = !caching || !job.cache ? undefined : index === 0 ? { spec: job.cache, restore: true, ...(last ? { save: true } : {}) } : last && cacheKey && !cacheKey.hit ? { spec: job.cache, save: true, key: cacheKey.key } : undefined;
        const req: StepRequest = {
          ...stepBase(input, job),
          step,
          artifacts: last ? job.artifacts : [],
          ...(last ? { lastStep: true } : {}),
          ...(restartNote ? { restartNote } : {}),
          pinsHost: true,
          ...(cache ? { cache } : {}),
        };
        const outcome = await runStep(req, pin, { pinRetries: true });
        if (outcome.lost) {
          lost = { step: step.name, why: outcome.lost };
          break;
        }
        pin ??= outcome.pin;
        if (index === 0 && outcome.cache) cacheKey = outcome.cache;
        if (ctx && step.id && outcome.outputs) ctx.steps[step.id] = outcome.outputs;
        if (outcome.status !== 'success') {
          await records.skipRemainingSteps({ runId: input.runId, tenantId: input.tenantId, job: job.name, after: step.name });
          status = outcome.status;
          break;
        }
      }
    } finally {
      // A lost host took its workspace with it (or prunes it when it returns): nothing to wait for there.
      if (!lost) {
        await CancellationScope.nonCancellable(() =>
          pin ? cleanupPinnedWorkspace(pin.queue, { runId: input.runId, job: job.name }) : sandboxSteps.cleanupWorkspace({ runId: input.runId, job: job.name }),
        );
      }
    }
    if (!lost) return status;
    if (losses >= MAX_HOST_LOSSES) {
      await records.failStep({ runId: input.runId, tenantId: input.tenantId, job: job.name, step: lost.step, message: `${lost.why}; the job already started again ${MAX_HOST_LOSSES} times after lost hosts` });
      await records.skipRemainingSteps({ runId: input.runId, tenantId: input.tenantId, job: job.name, after: lost.step });
      return 'failure';
    }
    restartNote = `restarted: ${lost.why}`;
  }
}

function stepBase(input: PipelineInput, job: JobSpec): Omit<StepRequest, 'step' | 'artifacts'> {
  return {
    runId: input.runId,
    tenantId: input.tenantId,
    tenant: input.tenant,
    repo: input.repo,
    ref: input.ref,
    commit: input.commit,
    job: {
      name: job.name,
      network: job.network,
      ...(job.secrets.length ? { secrets: job.secrets } : {}),
      // Issue 17 item 7: only a job that asks gets an id-token (patched: recorded histories have none).
      ...(job.idToken && patched('id-token') ? { idToken: { ...job.idToken, ...(input.actor ? { actor: input.actor } : {}), ...(input.event ? { event: input.event } : {}) } } : {}),
    },
    // A re-run's attempt (issue 17 item 5): its steps' logs are kept apart from earlier attempts'.
    ...(input.attempt && input.attempt > 1 ? { runAttempt: input.attempt } : {}),
  };
}

/** Before issue 11: every step on the shared sandbox queue (kept for runs recorded before the patch). */
async function runJobAnywhere(input: PipelineInput, job: JobSpec): Promise<StepStatus> {
  try {
    for (const [index, step] of job.steps.entries()) {
      const status = await runStepWithRetries({
        ...stepBase(input, job),
        step,
        artifacts: index === job.steps.length - 1 ? job.artifacts : [],
        ...(index === job.steps.length - 1 ? { lastStep: true } : {}),
      });
      if (status !== 'success') {
        await records.skipRemainingSteps({ runId: input.runId, tenantId: input.tenantId, job: job.name, after: step.name });
        return status;
      }
    }
    return 'success';
  } finally {
    await CancellationScope.nonCancellable(() =>
      sandboxSteps.cleanupWorkspace({ runId: input.runId, job: job.name }),
    );
  }
}
