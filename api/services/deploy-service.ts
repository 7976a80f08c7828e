import { randomUUID } from 'node:crypto';
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import type { ShardRouter } from '../../core/shard-router';
import { tenantDirectory } from '../../core/tenant-directory';
import {
  acquireLockSignal,
  approveUpdate,
  deployWorkflowId,
  environmentLockWorkflowId,
  rejectUpdate,
  TERMINAL_DEPLOY_STATUSES,
  type DeployInput,
  type DeployStatus,
} from '../../core/deploy-types';
import { ConflictError, InputError, NotAllowedError, NotFoundError, UnavailableError } from '../../core/errors';
import { assertValidName } from '../../core/names';
import { ENVIRONMENT_NAME, PIPELINE_PATH, PipelineSpecError, parsePipeline, type EnvironmentSpec } from '../../core/pipeline-spec';
import { atLeast, type Principal } from '../../core/principal';
import { findReadableRepo, findReadableRepoRow } from '../../core/repos';
import { environmentLockHolder, failUnstartedDeploy, insertQueuedDeploy, listDeploys } from '../../core/stores/deploys-store';
import { deployPendingReason } from '../../core/pending-reasons';
import { commitPipelineState, listSteps } from '../../core/stores/runs-store';
import type { Redis } from '../../core/redis';
import { followRowEvents, type RunEvent } from '../../core/run-events';
import { repoSearchAttributes, signalWithStartWorkflow, startWorkflow } from '../../core/workflow-starter';
import { requirePrincipal, requireRepoWrite, requireScope } from '../authz';
import { parseBody } from '../validation';
import { createDeployBody, decisionBody } from '../schemas/runs';
import { audit } from './audit';

/** Resolves a user-given ref in a repository (the git-server's internal API); undefined when it names nothing. */
export type RefResolver = (owner: string, repo: string, ref: string) => Promise<{ ref: string; commit: string } | undefined>;

/** The pipeline file at a commit (the git-server's internal API); null when the commit has none. */
export type PipelineFileReader = (owner: string, repo: string, commit: string) => Promise<string | null>;


function deployView(row: Record<string, unknown>, steps: Record<string, unknown>[] = [], lockHolder?: string) {
  const id = String(row.id);
  return {
    id,
    repo: `${row.owner}/${row.repo_name}`,
    environment: row.environment,
    ref: row.ref,
    commit: row.commit_sha,
    status: row.status,
    message: row.message ?? null,
    // Issue 17 item 8: waiting for approval, or for the environment lock an earlier deploy holds.
    pending: deployPendingReason(String(row.status), String(row.environment), lockHolder),
    requestedBy: row.requested_by,
    decidedBy: row.decided_by ?? null,
    decidedAt: row.decided_at ?? null,
    rollbackTo: row.rollback_to ?? null,
    createdAt: row.created_at,
    startedAt: row.started_at ?? null,
    finishedAt: row.finished_at ?? null,
    steps: steps.map((s) => ({ job: s.job, name: s.name, status: s.status, exitCode: s.exit_code ?? null, startedAt: s.started_at ?? null, finishedAt: s.finished_at ?? null })),
    links: { self: `/api/v1/deploys/${encodeURIComponent(id)}`, events: `/api/v1/deploys/${encodeURIComponent(id)}/events` },
  };
}

/**
 * Deploys (CONTRACT `POST …/deploys`, `GET /deploys/{id}`, approve/reject/cancel): each a `deploy`
 * workflow whose id is the deploy's id. The row is written before the workflow starts, so the 202's
 * id can be read at once.
 */
export class DeployService {
  constructor(
    /** Deploys live in their tenant's shard database (ADR 0025). */
    private readonly router: ShardRouter,
    private readonly redis: Redis,
    private readonly temporal: () => Promise<Client>,
    private readonly resolveRef: RefResolver,
    private readonly readPipelineFile: PipelineFileReader,
  ) {}

  async create(principal: Principal, owner: string, repoName: string, body: unknown, requestId?: string) {
    const repo = await requireRepoWrite(await tenantDirectory(this.router).dbOfOwner(owner), principal, owner, repoName, 'deploying');
    const { environment, ref } = parseBody(createDeployBody, body);
    const target = await this.resolveRef(repo.owner, repo.name, ref);
    if (!target) throw new NotFoundError(`ref ${ref} not found in ${repo.owner}/${repo.name}`);
    const env = await this.requireEnvironment(repo.owner, repo.name, target, environment);
    if (env.requires?.includes('pipeline')) await this.requireGreenPipeline(repo.id, repo.tenantId, target, environment);
    const id = deployWorkflowId(repo.owner, repo.name, environment, randomUUID());
    await insertQueuedDeploy(this.router.forTenant(repo.tenantId), { tenantId: repo.tenantId, id, repoId: repo.id, environment, ref: target.ref, commit: target.commit, requestedBy: principal.username });
    const input: DeployInput = {
      deployId: id,
      tenantId: repo.tenantId,
      tenant: repo.owner,
      repoId: repo.id,
      repo: repo.name,
      environment,
      ref: target.ref,
      commit: target.commit,
      requestedBy: principal.username,
    };
    try {
      const client = await this.temporal();
      await startWorkflow(client, 'deploy', id, [input], {
        typedSearchAttributes: repoSearchAttributes({ tenant: repo.owner, repo: repo.name, ref: target.ref, commit: target.commit, environment, status: 'queued' }),
      });
    } catch (err) {
      // Never a row that claims to be queued with nothing behind it.
      await failUnstartedDeploy(this.router.forTenant(repo.tenantId), repo.tenantId, id, 'the deploy could not be started');
      throw new UnavailableError(`could not start the deploy: ${(err as Error).message}`, undefined, { cause: err });
    }
    // Queued at its environment's lock before the 202: deploys accepted one after another hold the
    // environment in that order. The workflow's own request (an activity) comes later and is then a
    // repeat the lock ignores; were two deploys left to their activities, the later one's could reach
    // a free lock first. Should this signal fail, that request still queues the deploy.
    await this.temporal()
      .then((client) =>
        signalWithStartWorkflow(client, 'environmentLock', environmentLockWorkflowId(repo.owner, repo.name, environment), [{ queue: [] }], {
          name: acquireLockSignal.name,
          args: [id, Date.now()],
        }),
      )
      .catch(() => undefined);
    await audit(this.router.forTenant(repo.tenantId), { tenantId: repo.tenantId, actor: principal.username, action: 'deploy.create', target: id, detail: { environment, ref: target.ref, commit: target.commit }, requestId });
    return { id, status: 'queued' as DeployStatus, links: deployView({ id }).links };
  }

  /**
   * 400 unless the pipeline file at the deployed commit defines `environment`, naming the ones it
   * does: refused now rather than accepted and failed later. (The workflow checks again, as the
   * file it reads is the source of truth.)
   */
  private async requireEnvironment(owner: string, repoName: string, target: { ref: string; commit: string }, environment: string): Promise<EnvironmentSpec> {
    const at = `${target.ref} (${target.commit.slice(0, 12)})`;
    const text = await this.readPipelineFile(owner, repoName, target.commit);
    if (text === null) throw new InputError(`there is no ${PIPELINE_PATH} at ${at}, so it defines no environment "${environment}"`);
    let names: string[];
    let environments: EnvironmentSpec[];
    try {
      environments = parsePipeline(text).environments ?? [];
      names = environments.map((e) => e.name).sort();
    } catch (err) {
      if (err instanceof PipelineSpecError) throw new InputError(`${PIPELINE_PATH} at ${at} is not valid: ${err.message}`);
      throw err;
    }
    if (!names.includes(environment)) {
      const defined = names.length ? `it defines: ${names.join(', ')}` : 'it defines no environments';
      throw new InputError(`${PIPELINE_PATH} at ${at} defines no environment "${environment}"; ${defined}`);
    }
    return environments.find((e) => e.name === environment)!;
  }

  /**
   * Deploy gate (issue 17 item 9): an environment with `requires: [pipeline]` takes only a commit
   * some pipeline run of which succeeded; otherwise 409 saying what the commit's runs are.
   */
  private async requireGreenPipeline(repoId: number, tenantId: number, target: { ref: string; commit: string }, environment: string): Promise<void> {
    const state = await commitPipelineState(this.router.forTenant(tenantId), repoId, target.commit);
    if (state.green) return;
    const why = state.latest ? `its latest run ${state.latest.id} is ${state.latest.status}` : 'it has no pipeline run';
    throw new ConflictError(`environment "${environment}" requires a successful pipeline run of the commit (requires: [pipeline]); ${target.commit.slice(0, 12)} (${target.ref}) has none: ${why}`);
  }

  /** The deploy row, if the caller may read its repository; otherwise not found (nothing leaks). */
  private async readableDeploy(principal: Principal | null | undefined, id: string) {
    if (id.length > 400) throw new InputError('deploy id is too long');
    return findReadableRepoRow(await tenantDirectory(this.router).dbOfWorkflowId(id), principal, 'deploys', id, 'deploy');
  }

  async get(principal: Principal | null | undefined, id: string) {
    const { row } = await this.readableDeploy(principal, id);
    const db = this.router.forTenant(Number(row.tenant_id));
    const holder = row.status === 'queued' ? await environmentLockHolder(db, Number(row.tenant_id), Number(row.repo_id), String(row.environment), id) : undefined;
    return deployView(row, await listSteps(db, row.tenant_id, id), holder);
  }

  /** An environment's (or every environment's) deploy history, newest first. */
  async list(principal: Principal | null | undefined, owner: string, repoName: string, q: { environment?: unknown }) {
    const { repo } = await findReadableRepo(await tenantDirectory(this.router).dbOfOwner(assertValidName('owner', owner)), principal, owner, assertValidName('repo', repoName));
    if (q.environment !== undefined && (typeof q.environment !== 'string' || !ENVIRONMENT_NAME.test(q.environment))) throw new InputError('environment is not valid');
    const rows = await listDeploys(this.router.forTenant(repo.tenantId), repo.id, q.environment);
    return { deploys: rows.map((row) => deployView(row)) };
  }

  /** Approve or reject at the gate: a Temporal update, so the answer says whether the workflow took it. */
  async decide(principal: Principal, id: string, approve: boolean, body: unknown, requestId?: string) {
    const { row } = await this.writableDeploy(principal, id, approve ? 'approving a deploy' : 'rejecting a deploy');
    const { comment } = parseBody(decisionBody, body);
    const decision = { by: principal.username, ...(comment !== undefined ? { comment } : {}) };
    try {
      const client = await this.temporal();
      await client.workflow.getHandle(id).executeUpdate(approve ? approveUpdate : rejectUpdate, { args: [decision] });
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) throw new ConflictError(err.cause?.message ?? `deploy ${id} is not waiting for approval`);
      if (err instanceof WorkflowNotFoundError) throw new ConflictError(`deploy ${id} has ended`);
      throw new UnavailableError(`could not reach Temporal: ${(err as Error).message}`);
    }
    await audit(this.router.forTenant(Number(row.tenant_id)), { tenantId: Number(row.tenant_id), actor: principal.username, action: approve ? 'deploy.approve' : 'deploy.reject', target: id, requestId });
    return { id, status: approve ? 'running' : 'rejected', decidedBy: principal.username };
  }

  async cancel(principal: Principal, id: string, requestId?: string): Promise<void> {
    const { row } = await this.writableDeploy(principal, id, 'cancelling a deploy');
    if (TERMINAL_DEPLOY_STATUSES.includes(row.status)) return;
    try {
      const client = await this.temporal();
      await client.workflow.getHandle(id).cancel();
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return; // it ended meanwhile
      throw new UnavailableError(`could not reach Temporal to cancel the deploy: ${(err as Error).message}`);
    }
    await audit(this.router.forTenant(Number(row.tenant_id)), { tenantId: Number(row.tenant_id), actor: principal.username, action: 'deploy.cancel', target: id, requestId });
  }

  async events(principal: Principal | null | undefined, id: string, after: string, signal: AbortSignal): Promise<AsyncIterable<RunEvent>> {
    const { row } = await this.readableDeploy(principal, id);
    return followRowEvents(this.router.forTenant(Number(row.tenant_id)), this.redis, 'deploys', { tenantId: Number(row.tenant_id), id }, after, signal);
  }


  private async writableDeploy(principal: Principal, id: string, what: string) {
    const p = requirePrincipal(principal);
    const found = await this.readableDeploy(p, id);
    if (!atLeast(found.access, 'write')) throw new NotAllowedError(`${what} needs write access to the repository`);
    requireScope(p, 'write');
    return found;
  }
}
