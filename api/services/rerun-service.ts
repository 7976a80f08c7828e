import type { Client } from '@temporalio/client';
import type { Db } from '../../core/db';
import type { ShardRouter } from '../../core/shard-router';
import { tenantDirectory } from '../../core/tenant-directory';
import { ConflictError, InputError, NotAllowedError, NotFoundError, UnavailableError } from '../../core/errors';
import { atLeast, type Principal } from '../../core/principal';
import { logStreamKey, type Redis } from '../../core/redis';
import { findReadableRepoRow } from '../../core/repos';
import type { PipelineInput } from '../../core/run-types';
import { beginRunAttempt, listAttemptSteps, listRunAttempts } from '../../core/stores/run-attempts-store';
import { failQueuedRun } from '../../core/stores/runs-store';
import { appendRunEvent } from '../../core/run-events';
import { repoSearchAttributes, startWorkflow } from '../../core/workflow-starter';
import { requirePrincipal, requireScope } from '../authz';
import { rerunBody } from '../schemas/pipelines';
import { parseBody } from '../validation';
import { audit } from './audit';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';

/** How long a re-run waits for the previous attempt's workflow to close after its run row ended. */
const FINISHING_WAIT_MS = 10_000;

/**
 * Re-runs (issue 17 item 5, ADR 0030): a run that ended runs again as attempt N+1 of the same run id
 * (the same Temporal workflow id, a new execution), every job or only the jobs that did not succeed
 * (and, since they were skipped, the jobs that need them); the other jobs' steps, artifacts and
 * outputs stand from the attempt that ran them.
 */
export class RerunService {
  constructor(
    private readonly router: ShardRouter,
    private readonly redis: Redis,
    private readonly temporal: () => Promise<Client>,
  ) {}

  async rerun(principal: Principal | null | undefined, id: string, body: unknown, requestId?: string): Promise<{ id: string; attempt: number }> {
    const p = requirePrincipal(principal);
    if (id.length > 300) throw new InputError('run id is too long');
    const { row, access, repo } = await findReadableRepoRow(await tenantDirectory(this.router).dbOfWorkflowId(id), p, 'runs', id, 'run');
    const db = this.router.forTenant(repo.tenantId);
    if (!atLeast(access, 'write')) throw new NotAllowedError('re-running a run needs write access to the repository');
    requireScope(p, 'write');
    const { failedOnly } = parseBody(rerunBody, body);
    let client: Client;
    try {
      client = await this.temporal();
    } catch (err) {
      throw new UnavailableError(`could not reach Temporal: ${(err as Error).message}`, 5, { cause: err });
    }
    if (!['success', 'failure', 'cancelled'].includes(row.status)) throw new ConflictError(`run ${id} is ${row.status}; re-run it once it has ended`);
    // The run's row ends a moment before its workflow does (webhooks, search attributes): a re-run
    // waits for that, up to FINISHING_WAIT_MS.
    const handle = client.workflow.getHandle(id);
    const running = () => handle.describe().then((d) => d.status.name === 'RUNNING', () => false);
    for (const deadline = Date.now() + FINISHING_WAIT_MS; await running(); ) {
      if (Date.now() > deadline) throw new ConflictError(`run ${id} is still finishing; re-run it in a moment`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const begun = await beginRunAttempt(db, repo.tenantId, id, failedOnly ? 'failed' : 'all', p.username);
    if (!begun.ok) {
      throw new ConflictError(begun.reason === 'nothing-failed' ? `every job of run ${id} succeeded; re-run it without failedOnly to run them again` : `run ${id} is ${begun.status}; re-run it once it has ended`);
    }
    // The live stream starts over for the new attempt (earlier attempts' logs are stored).
    await this.redis.del(logStreamKey(id)).catch(() => undefined);
    await appendRunEvent(this.redis, id, { event: 'status', status: 'queued', message: `attempt ${begun.attempt}` });
    // What started the run and its inputs, when the run row keeps them (issue 17 item 6), carry over.
    const carried = Object.fromEntries(['event', 'inputs'].filter((k) => row[k] !== null && row[k] !== undefined).map((k) => [k, row[k]]));
    const input = { ...carried, runId: id, tenantId: repo.tenantId, tenant: repo.owner, repoId: repo.id, repo: repo.name, ref: String(row.ref), commit: String(row.commit_sha), attempt: begun.attempt } as PipelineInput;
    try {
      await startWorkflow(client, 'pipeline', id, [input], {
        // A new execution under the run's id: the earlier attempt's has closed (checked above).
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
        typedSearchAttributes: repoSearchAttributes({ tenant: repo.owner, repo: repo.name, ref: input.ref, commit: input.commit }),
      });
    } catch (err) {
      const why = err instanceof WorkflowExecutionAlreadyStartedError ? 'its previous attempt was still finishing' : (err as Error).message;
      await failQueuedRun(db, repo.tenantId, id, `attempt ${begun.attempt} could not start: ${why}`);
      if (err instanceof WorkflowExecutionAlreadyStartedError) throw new ConflictError(`run ${id} was still finishing; re-run it again in a moment`);
      throw new UnavailableError(`could not start attempt ${begun.attempt} of run ${id}: ${why}`, 5, { cause: err });
    }
    await audit(db, { tenantId: repo.tenantId, actor: p.username, action: 'run.rerun', target: id, detail: { attempt: begun.attempt, failedOnly: Boolean(failedOnly), jobs: begun.jobs }, requestId });
    return { id, attempt: begun.attempt };
  }
}

/** The attempts of a run, oldest first (CONTRACT: attempts visible in the API); the current one's state is the run row's. */
export async function runAttemptsView(db: Db, tenantId: number, run: Record<string, unknown>) {
  const rows = await listRunAttempts(db, tenantId, String(run.id));
  const current = Number(run.attempt ?? 1);
  const view = (a: Record<string, unknown>) => ({
    attempt: Number(a.attempt),
    status: String(a.status),
    message: (a.message as string | null) ?? null,
    failedOnly: Boolean(a.failed_only),
    requestedBy: (a.requested_by as string | null) ?? null,
    createdAt: a.created_at,
    startedAt: a.started_at ?? null,
    finishedAt: a.finished_at ?? null,
  });
  const earlier = rows.filter((a) => Number(a.attempt) < current).map(view);
  const mine = rows.find((a) => Number(a.attempt) === current);
  return [...earlier, view({ ...mine, attempt: current, status: run.status, message: run.message, created_at: mine?.created_at ?? run.created_at, started_at: run.started_at, finished_at: run.finished_at })];
}

/**
 * The run row and steps as attempt `wanted` left them, for an earlier attempt (`GET /runs/{id}?attempt=N`);
 * undefined for the current one. Unknown attempts are not found.
 */
export async function earlierAttempt(db: Db, tenantId: number, run: Record<string, unknown>, wanted: number, attempts: Awaited<ReturnType<typeof runAttemptsView>>) {
  if (wanted === Number(run.attempt ?? 1)) return undefined;
  const a = attempts.find((x) => x.attempt === wanted);
  if (!a) throw new NotFoundError(`run ${String(run.id)} has no attempt ${wanted}`);
  const steps = (await listAttemptSteps(db, tenantId, String(run.id), wanted)).map((s) => ({ ...s, attempt: s.step_attempt }));
  return { row: { ...run, status: a.status, message: a.message, attempt: wanted, started_at: a.startedAt, finished_at: a.finishedAt }, steps };
}
