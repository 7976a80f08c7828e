import { z } from 'zod';
import { environmentField, refField } from '../validation';
import { links, timestamp } from './common';
import { runAttempt } from './pipelines';

/** Runs (pipelines) and deploys: what starts them, lists them and what they answer. */

export const RUN_STATUSES = ['queued', 'running', 'success', 'failure', 'cancelled'] as const;

export const createRunBody = z.strictObject({
  ref: refField.meta({ description: 'branch, tag or commit id to run the pipeline of' }),
  // Issue 17 item 6: checked against the file's on.manual.inputs at that commit (400 naming the input).
  inputs: z
    .record(z.string().max(64), z.union([z.string().max(4096), z.number(), z.boolean()], { error: 'inputs: each value must be a string, a number or a boolean' }))
    .optional()
    .meta({ description: 'values of the inputs the pipeline file declares under on.manual.inputs (defaults fill the others)' }),
});

export const listRunsQuery = z.object({
  commit: z.string().regex(/^[0-9a-f]{40,64}$/, { error: 'commit must be a full commit id' }).optional(),
  ref: refField.optional(),
  status: z.enum(RUN_STATUSES).optional(),
});

/** `GET /runs` (issue 18): recent runs across the caller's repositories, with the repository list's filters and the event. */
export const recentRunsQuery = listRunsQuery.extend({
  event: z.enum(['push', 'manual', 'schedule']).optional().meta({ description: 'what started the run' }),
  limit: z
    .string()
    .regex(/^\d{1,3}$/, { error: 'limit must be a whole number from 1 to 100' })
    .refine((v) => Number(v) >= 1 && Number(v) <= 100, { error: 'limit must be a whole number from 1 to 100' })
    .optional()
    .meta({ description: 'at most this many runs (1–100, default 50)' }),
});

export const logsQuery = z.object({
  job: z.string().max(200).optional().meta({ description: 'only this job’s steps' }),
  step: z.string().max(200).optional().meta({ description: 'only this step (with job: one log, without headers)' }),
});

export const artifactQuery = z.object({ job: z.string().max(200).optional().meta({ description: 'the job that uploaded it, when several did' }) });

/** `?lastEventId=` resumes a stream after that event (as the Last-Event-ID header does). */
export const eventsQuery = z.object({ lastEventId: z.string().max(100).optional() });

/** Why a run, job or deploy waits (issue 17 item 8; core/pending-reasons.ts). */
export const pendingAnswer = z
  .object({
    reason: z.enum(['concurrency', 'needs', 'sandbox', 'approval', 'environment']),
    message: z.string().meta({ description: 'e.g. "queued behind 2 runs in concurrency group ci-main", "waiting for needs: build", "waiting for a sandbox host (backlog 3)"' }),
  })
  .nullable()
  .meta({ id: 'PendingReason', description: 'why it waits; null when it does not' });

export const stepAnswer = z.object({
  job: z.string(),
  pending: pendingAnswer.optional().meta({ description: "a queued step's job's pending reason (GET /runs/{id})" }),
  name: z.string(),
  status: z.string(),
  exitCode: z.number().int().nullable(),
  attempt: z.number().int().nullable(),
  host: z.string().nullable(),
  runAttempt: z.number().int().min(1).meta({ description: 'the attempt of the run that produced this step (a re-run reuses the steps of jobs it does not run again)' }),
  startedAt: timestamp.nullable(),
  finishedAt: timestamp.nullable(),
});

/** How many of a run's steps are in each state: what a list shows instead of every step. */
export const stepsSummary = z
  .object({
    total: z.number().int(),
    queued: z.number().int(),
    running: z.number().int(),
    success: z.number().int(),
    failure: z.number().int(),
    cancelled: z.number().int(),
    skipped: z.number().int(),
  })
  .meta({ id: 'StepsSummary', description: 'steps of the run by status (GET /runs/{id} lists them one by one)' });

export const runAnswer = z
  .object({
    id: z.string(),
    repo: z.string(),
    ref: z.string(),
    commit: z.string(),
    status: z.enum(RUN_STATUSES),
    message: z.string().nullable(),
    attempt: z.number().int().min(1).meta({ description: 'the run’s current attempt: 1, then 2, 3 … with each re-run' }),
    attempts: z.array(runAttempt).optional().meta({ description: 'every attempt, oldest first (GET /runs/{id} only)' }),
    createdAt: timestamp,
    startedAt: timestamp.nullable(),
    finishedAt: timestamp.nullable(),
    event: z.enum(['push', 'manual', 'schedule']).nullable().meta({ description: 'what started the run (null for runs from before this was recorded)' }),
    inputs: z.record(z.string(), z.string()).nullable().meta({ description: 'the inputs of a run started by hand, as its steps see them' }),
    pending: pendingAnswer,
    steps: z.array(stepAnswer),
    // Issue 18: the run page's job graph (GET /runs/{id} only).
    jobs: z
      .array(z.object({ name: z.string(), needs: z.array(z.string()).meta({ description: 'the jobs of this run it waits for (its needs:; a matrix job as its instances)' }) }))
      .optional()
      .meta({ description: 'the run’s jobs (as its steps name them) with the jobs each needs, from the pipeline file at the run’s commit; no needs when that file cannot be read (GET /runs/{id} only)' }),
  })
  .meta({ id: 'Run' });

/** A run as lists show it: its steps counted by status instead of listed. */
export const runListItem = runAnswer.omit({ steps: true, jobs: true }).extend({ stepsSummary }).meta({ id: 'RunListItem' });

export const runListAnswer = z.object({ runs: z.array(runListItem) });

export const runCreatedAnswer = z.object({ id: z.string(), status: z.literal('queued'), ref: z.string(), commit: z.string(), links });

export const cancellingAnswer = z.object({ id: z.string(), status: z.literal('cancelling') });

export const artifactListAnswer = z.object({
  artifacts: z.array(z.object({ job: z.string(), path: z.string(), size: z.number().int(), sha256: z.string(), createdAt: timestamp })),
});

export const createDeployBody = z.strictObject({ ref: refField.meta({ description: 'branch, tag or commit id to deploy' }), environment: environmentField });

const COMMENT_MESSAGE = 'comment must be a string of at most 1000 characters';
export const decisionBody = z.strictObject({ comment: z.string({ error: COMMENT_MESSAGE }).max(1000, { error: COMMENT_MESSAGE }).optional() });

export const listDeploysQuery = z.object({ environment: environmentField.optional() });

export const DEPLOY_STATUSES = ['queued', 'waiting_approval', 'running', 'success', 'failure', 'rolled_back', 'rejected', 'cancelled'] as const;

export const deployAnswer = z
  .object({
    id: z.string(),
    repo: z.string(),
    environment: z.string(),
    ref: z.string(),
    commit: z.string().nullable(),
    status: z.enum(DEPLOY_STATUSES),
    message: z.string().nullable(),
    pending: pendingAnswer,
    requestedBy: z.string(),
    decidedBy: z.string().nullable(),
    decidedAt: timestamp.nullable(),
    rollbackTo: z.string().nullable(),
    createdAt: timestamp,
    startedAt: timestamp.nullable(),
    finishedAt: timestamp.nullable(),
    steps: z.array(stepAnswer.pick({ job: true, name: true, status: true, exitCode: true, startedAt: true, finishedAt: true })),
    links,
  })
  .meta({ id: 'Deploy' });

export const deployListAnswer = z.object({ deploys: z.array(deployAnswer) });
export const deployCreatedAnswer = z.object({ id: z.string(), status: z.literal('queued'), links });
export const decisionAnswer = z.object({ id: z.string(), status: z.string(), decidedBy: z.string() });

export type CreateRunBody = z.input<typeof createRunBody>;
export type RunAnswer = z.infer<typeof runAnswer>;
export type StepsSummary = z.infer<typeof stepsSummary>;
export type RunListItem = z.infer<typeof runListItem>;
export type CreateDeployBody = z.input<typeof createDeployBody>;
