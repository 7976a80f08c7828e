import type { Client } from '@temporalio/client';
import type { Db } from '../core/db';
import type { ShardRouter } from '../core/shard-router';
import { acquireLockSignal, type DeployInput, type DeployStatus } from '../core/deploy-types';
import { PIPELINE_PATH, PipelineSpecError, parsePipeline, type EnvironmentSpec } from '../core/pipeline-spec';
import type { Redis } from '../core/redis';
import { appendRunEvent } from '../core/run-events';
import { signalWithStartWorkflow } from '../core/workflow-starter';
import { readPipelineFile, type PipelineFileSource } from './pipeline-file';
import * as deploysStore from '../core/stores/deploys-store';
import { createQueuedSteps } from '../core/stores/runs-store';

export interface DeployActivityDeps {
  /** The one database when there is no router (tests of their own database). */
  db: Db;
  /** Routes each deploy's records to its tenant's shard database (ADR 0025). */
  router?: ShardRouter;
  /** Where the deployed commit's pipeline file is read (no repository disk needed). */
  source: PipelineFileSource;
  redis?: Redis;
  temporal: () => Promise<Client>;
}

export type LoadEnvironmentResult = { ok: true; environment: EnvironmentSpec } | { ok: false; message: string };

/** Light activities of the deploy workflow (orchestration queue): records, the environment's spec, the lock. */
export function createDeployActivities({ db, router, source, redis, temporal }: DeployActivityDeps) {
  // A deploy's rows live in its tenant's shard (ADR 0025).
  const dbOf = (tenantId: number) => router?.forTenant(tenantId) ?? db;
  return {
    /** The environment as the pipeline file at the deployed commit defines it; a bad file is a result, not an error. */
    async loadDeployEnvironment(input: DeployInput): Promise<LoadEnvironmentResult> {
      try {
        const { text, tooLarge } = await readPipelineFile(source, input);
        if (tooLarge) return { ok: false, message: `${PIPELINE_PATH}:1:1: ${tooLarge}` };
        if (text === undefined) return { ok: false, message: `${PIPELINE_PATH} not found at ${input.commit}` };
        const env = parsePipeline(text).environments?.find((e) => e.name === input.environment);
        if (!env) return { ok: false, message: `${PIPELINE_PATH} at ${input.commit.slice(0, 12)} defines no environment "${input.environment}"` };
        return { ok: true, environment: env };
      } catch (err) {
        if (err instanceof PipelineSpecError) return { ok: false, message: err.message };
        throw err;
      }
    },

    /**
     * Queues the deploy at its environment's lock, starting the lock workflow if it is not running
     * (signal-with-start: atomic, and a retried activity only re-queues the same id, which the lock ignores).
     */
    async requestEnvironmentLock(args: { lockWorkflowId: string; deployId: string; requestedAt: number }): Promise<void> {
      const client = await temporal();
      await signalWithStartWorkflow(client, 'environmentLock', args.lockWorkflowId, [{ queue: [] }], { name: acquireLockSignal.name, args: [args.deployId, args.requestedAt] });
    },

    async setDeployStatus(args: { deployId: string; tenantId: number; status: DeployStatus; decidedBy?: string }): Promise<void> {
      await deploysStore.setDeployStatus(dbOf(args.tenantId), args.tenantId, args.deployId, args.status, args.decidedBy ?? null);
      await appendRunEvent(redis, args.deployId, { event: 'status', status: args.status });
    },

    /** Step rows of one part (deploy or rollback) of a deploy, so logs and statuses work as for runs (idempotent). */
    async createDeploySteps(args: { deployId: string; tenantId: number; job: string; steps: string[]; firstPosition: number }): Promise<void> {
      const steps = args.steps.map((name) => ({ job: args.job, name }));
      await createQueuedSteps(dbOf(args.tenantId), args.tenantId, args.deployId, steps, args.firstPosition);
    },

    /** The environment's most recent successful deploy before this one: what a rollback returns to. */
    async lastGoodDeploy(args: { tenantId: number; repoId: number; environment: string; excludeId: string }): Promise<{ id: string; commit: string } | null> {
      return deploysStore.lastGoodDeploy(dbOf(args.tenantId), args.tenantId, args.repoId, args.environment, args.excludeId);
    },

    async finishDeploy(args: { deployId: string; tenantId: number; status: DeployStatus; message?: string; rollbackTo?: string; decidedBy?: string }): Promise<void> {
      await deploysStore.finishDeploy(dbOf(args.tenantId), {
        tenantId: args.tenantId,
        id: args.deployId,
        status: args.status,
        message: args.message ?? null,
        rollbackTo: args.rollbackTo ?? null,
        decidedBy: args.decidedBy ?? null,
      });
      await appendRunEvent(redis, args.deployId, { event: 'status', status: args.status, message: args.message });
    },
  };
}

export type DeployActivities = ReturnType<typeof createDeployActivities>;
