import { ApplicationFailure } from '@temporalio/activity';
import type { Db } from '../core/db';
import type { ShardRouter } from '../core/shard-router';
import { logStreamKey, repoGenerationKey, type Redis } from '../core/redis';
import { readPipelineFile, type PipelineFileSource } from './pipeline-file';
import { PIPELINE_PATH, PipelineSpecError, expandDynamicMatrix, parsePipeline, type JobSpec } from '../core/pipeline-spec';
import { MAX_RUN_EVENTS, appendRunEvent } from '../core/run-events';
import { forgetPendingEvents, publishPendingEvents } from '../core/pending-events';
import { applyInputs, defaultInputs } from '../core/pipeline-triggers';
import { resolveGroup } from '../core/pipeline-concurrency';
import * as runsStore from '../core/stores/runs-store';
import { findReusableJobs, upsertJobOutputs } from '../core/stores/run-attempts-store';
import { hasWebhookFor } from './webhook-activities';
import { observeRunFinished } from './run-metrics';
import type { LoadPipelineResult, PipelineInput, RunStatus } from '../core/run-types';

export interface OrchestrationDeps extends PipelineFileSource {
  /** The one database when there is no router (tests of their own database). */
  db: Db;
  /** Routes each run's records to its tenant's shard database (ADR 0025). */
  router?: ShardRouter;
  redis?: Redis;
}

/** Light activities of the pipeline workflow: parsing the pipeline file and recording state in Postgres. */
export function createOrchestrationActivities(deps: OrchestrationDeps) {
  const { db, redis } = deps;
  // A run's rows live in its tenant's shard (ADR 0025).
  const dbOf = (tenantId: number) => deps.router?.forTenant(tenantId) ?? db;
  return {
    /**
     * Reads `.dotgit/pipeline.yml` at the pushed commit; an invalid file is a result, not an error, so
     * the run fails at once with the line and problem as its message. Only reading can fail for
     * reasons worth retrying (git unreachable); parsing fails the same way every time, so never.
     */
    async loadPipeline(input: PipelineInput): Promise<LoadPipelineResult> {
      // Issue 11: the workflow starts no workflow_run dispatch children for a repository without such hooks.
      const workflowRunHooks = await hasWebhookFor(dbOf(input.tenantId), input.tenantId, input.repoId, 'workflow_run');
      const { text, tooLarge } = await readPipelineFile(deps, input);
      if (tooLarge) return { ok: false, message: `${PIPELINE_PATH}:1:1: ${tooLarge}`, workflowRunHooks };
      if (text === undefined) return { ok: false, message: `${PIPELINE_PATH} not found at ${input.commit}`, workflowRunHooks };
      try {
        const spec = parsePipeline(text);
        // Issue 17: `${{ inputs.* }}` and INPUT_* from a hand-started run's inputs (the api checked
        // them), or the defaults for runs of pushes and schedules.
        const declared = spec.on.manual?.inputs;
        const inputs = input.inputs ?? (declared ? defaultInputs(declared) : {});
        if (declared) spec.jobs = applyInputs(spec.jobs, inputs);
        // Issue 17 item 4: the run's concurrency group, its `${{ … }}` filled in from the run.
        if (spec.concurrency) {
          spec.concurrency.group = resolveGroup(spec.concurrency.group, { ref: input.ref, commit: input.commit, repo: `${input.tenant}/${input.repo}`, event: input.event ?? 'push', inputs });
          if (spec.concurrency.group.trim() === '') return { ok: false, message: `${PIPELINE_PATH}: concurrency.group is empty for this run`, workflowRunHooks };
        }
        // Job-level groups (ADR 0037) likewise.
        for (const job of spec.jobs) {
          if (!job.concurrency) continue;
          job.concurrency.group = resolveGroup(job.concurrency.group, { ref: input.ref, commit: input.commit, repo: `${input.tenant}/${input.repo}`, event: input.event ?? 'push', inputs });
          if (job.concurrency.group.trim() === '') return { ok: false, message: `${PIPELINE_PATH}: jobs.${job.name}.concurrency.group is empty for this run`, workflowRunHooks };
        }
        return { ok: true, spec, workflowRunHooks };
      } catch (err) {
        if (err instanceof PipelineSpecError) return { ok: false, message: err.message, workflowRunHooks };
        // parsePipeline turns every problem of the file into a PipelineSpecError; anything else is a
        // defect here, and the same on every attempt: fail the activity at once rather than 20 times.
        throw ApplicationFailure.nonRetryable(`${PIPELINE_PATH}: ${err instanceof Error ? err.message : String(err)}`, 'PipelineParseFailure');
      }
    },

    /** Marks the run running and creates its step rows (idempotent for activity retries). */
    async startRun(args: { runId: string; tenantId: number; jobs: JobSpec[] }): Promise<void> {
      // Needs as the file names them (a matrix job, not its instances): what a pending reason says (ADR 0037).
      const inFile = new Map(args.jobs.map((j) => [j.name, j.matrix?.job ?? j.name]));
      const needsOf = (job: JobSpec) => [...new Set(job.needs.map((n) => inFile.get(n) ?? n))];
      const steps = args.jobs.flatMap((job) => job.steps.map((step) => ({ job: job.name, name: step.name, needs: needsOf(job) })));
      await runsStore.startRun(dbOf(args.tenantId), args.tenantId, args.runId, steps);
      await appendRunEvent(redis, args.runId, { event: 'status', status: 'running' });
      // Every job waits at first, for its needs or a sandbox host (ADR 0044); an earlier attempt's are forgotten.
      await publishPendingEvents(dbOf(args.tenantId), redis, args.tenantId, args.runId, { reset: true });
    },

    async finishRun(args: { runId: string; tenantId: number; status: RunStatus; message?: string }): Promise<void> {
      // Steps that never ran end with the run. `was`, the status it had before: a retried activity
      // counts the run's end once in the metrics.
      const ended = await runsStore.finishRun(dbOf(args.tenantId), args.tenantId, args.runId, args.status, args.message ?? null);
      if (ended && (ended.was === 'queued' || ended.was === 'running')) observeRunFinished(args.status, ended.seconds);
      await appendRunEvent(redis, args.runId, { event: 'status', status: args.status, message: args.message });
      await forgetPendingEvents(redis, args.runId);
    },

    /** A step that could not run at all (no sandbox, checkout failed): failed, with the reason as its log line. */
    async failStep(args: { runId: string; tenantId: number; job: string; step: string; message: string }): Promise<void> {
      await runsStore.failStep(dbOf(args.tenantId), { tenantId: args.tenantId, runId: args.runId, job: args.job, step: args.step }, `${args.job}/${args.step}: ${args.message}`);
      await appendRunEvent(redis, args.runId, { event: 'step', job: args.job, step: args.step, status: 'failure' });
      await publishPendingEvents(dbOf(args.tenantId), redis, args.tenantId, args.runId);
    },

    /**
     * The finalisation step that drops a repository's cached ref advertisements (the git-server
     * keys them by this generation), so nothing served after a run predates what the run saw.
     */
    async invalidateRepoCaches(args: { tenant: string; repo: string }): Promise<void> {
      await redis?.incr(repoGenerationKey(`${args.tenant}/${args.repo}`));
    },

    async skipJob(args: { runId: string; tenantId: number; job: string }): Promise<void> {
      const skipped = await runsStore.skipQueuedSteps(dbOf(args.tenantId), args.tenantId, args.runId, args.job);
      for (const name of skipped) await appendRunEvent(redis, args.runId, { event: 'step', job: args.job, step: name, status: 'skipped' });
      await publishPendingEvents(dbOf(args.tenantId), redis, args.tenantId, args.runId);
    },

    /** Issue 17 item 5: a job's outputs, kept so a later attempt that reuses the job can hand them on. */
    async recordJobOutputs(args: { runId: string; tenantId: number; job: string; outputs: Record<string, string>; attempt: number }): Promise<void> {
      await upsertJobOutputs(dbOf(args.tenantId), args.tenantId, args.runId, args.job, args.outputs, args.attempt);
    },

    /** The jobs a re-run reuses (every step succeeded in an earlier attempt; the api reset the others), with their kept outputs. */
    async reusedJobs(args: { runId: string; tenantId: number }): Promise<Record<string, Record<string, string>>> {
      return findReusableJobs(dbOf(args.tenantId), args.tenantId, args.runId);
    },

    /**
     * Issue 17 item 1: a dynamic matrix job's instances, from the output its matrix names (`json`);
     * their step rows replace the job's own. A matrix that is not valid JSON (or too big) fails the
     * job with the problem as its first step's message and skips the rest; the run goes on.
     */
    async expandMatrixJob(args: { runId: string; tenantId: number; job: JobSpec; json: string; otherJobs: string[]; values?: Record<string, string> }): Promise<{ ok: true; jobs: JobSpec[] } | { ok: false; message: string }> {
      const db = dbOf(args.tenantId);
      const built = expandDynamicMatrix(args.job, args.json, args.otherJobs, args.values);
      if ('problem' in built) {
        const [first] = args.job.steps;
        // The problem as the step's live log line too (the step has no stored log: it never ran).
        await redis?.xadd(logStreamKey(args.runId), 'MAXLEN', '~', MAX_RUN_EVENTS, '*', 'job', args.job.name, 'step', first.name, 'stream', 'stderr', 'line', `dotgit: ${built.problem}`).catch(() => undefined);
        await runsStore.failStep(db, { tenantId: args.tenantId, runId: args.runId, job: args.job.name, step: first.name }, `${args.job.name}/${first.name}: ${built.problem}`);
        await appendRunEvent(redis, args.runId, { event: 'step', job: args.job.name, step: first.name, status: 'failure' });
        const skipped = await runsStore.skipQueuedSteps(db, args.tenantId, args.runId, args.job.name);
        for (const name of skipped) await appendRunEvent(redis, args.runId, { event: 'step', job: args.job.name, step: name, status: 'skipped' });
        await publishPendingEvents(db, redis, args.tenantId, args.runId);
        return { ok: false, message: built.problem };
      }
      await runsStore.replaceJobWithInstances(db, args.tenantId, args.runId, args.job.name, built.jobs.flatMap((j) => j.steps.map((st) => ({ job: j.name, name: st.name, needs: j.needs }))));
      await publishPendingEvents(db, redis, args.tenantId, args.runId);
      return { ok: true, jobs: built.jobs };
    },

    async skipRemainingSteps(args: { runId: string; tenantId: number; job: string; after: string }): Promise<void> {
      const skipped = await runsStore.skipQueuedStepsAfter(dbOf(args.tenantId), args.tenantId, args.runId, args.job, args.after);
      for (const name of skipped) await appendRunEvent(redis, args.runId, { event: 'step', job: args.job, step: name, status: 'skipped' });
      // The job ended: the jobs that need it wait for something else now.
      await publishPendingEvents(dbOf(args.tenantId), redis, args.tenantId, args.runId);
    },
  };
}

export type OrchestrationActivities = ReturnType<typeof createOrchestrationActivities>;
