import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { ShardRouter } from '../../core/shard-router';
import { tenantDirectory } from '../../core/tenant-directory';
import { InputError, NotAllowedError, NotFoundError, UnavailableError } from '../../core/errors';
import { assertValidName } from '../../core/names';
import type { ObjectStore } from '../../core/object-store';
import { atLeast, type Principal } from '../../core/principal';
import { findReadableRepo, findReadableRepoRow } from '../../core/repos';
import { cancelUnstartedRun, countStepsByStatus, findArtifact, insertQueuedRun, listArtifacts, listRuns, listStepLogKeys, listSteps } from '../../core/stores/runs-store';
import { enqueuePipelineStart } from '../../core/stores/outbox-store';
import { inTransaction } from '../../core/db';
import { logStreamKey, streamFields, type Redis } from '../../core/redis';
import { requirePrincipal, requireRepoWrite, requireScope } from '../authz';
import { pipelineWorkflowId, type PipelineInput } from '../../core/run-types';
import type { PipelineFileReader, RefResolver } from './deploy-service';
import { PIPELINE_PATH, PipelineSpecError, parsePipeline } from '../../core/pipeline-spec';
import { InputValueError, resolveInputs } from '../../core/pipeline-triggers';
import { parseBody, queryParam, refField } from '../validation';
import { audit } from './audit';
import { randomUUID } from 'node:crypto';
import { followRowEvents, type RunEvent } from '../../core/run-events';
import { earlierAttempt, runAttemptsView } from './rerun-service';
import { createRunBody, type StepsSummary } from '../schemas/runs';

const STATUSES = ['queued', 'running', 'success', 'failure', 'cancelled'];

/** A run's steps by status (api/schemas/runs.ts StepsSummary). */
function stepsSummary(by: Record<string, number>): StepsSummary {
  const n = (s: string) => by[s] ?? 0;
  return { total: Object.values(by).reduce((a, b) => a + b, 0), queued: n('queued'), running: n('running'), success: n('success'), failure: n('failure'), cancelled: n('cancelled'), skipped: n('skipped') };
}

function runView(row: Record<string, unknown>, steps: Record<string, unknown>[] = []) {
  return {
    id: row.id,
    repo: `${row.owner}/${row.repo_name}`,
    ref: row.ref,
    commit: row.commit_sha,
    status: row.status,
    message: row.message ?? null,
    // Issue 17 item 5: the run's current attempt (re-runs count on from 1).
    attempt: Number(row.attempt ?? 1),
    createdAt: row.created_at,
    startedAt: row.started_at ?? null,
    finishedAt: row.finished_at ?? null,
    event: row.event ?? null,
    inputs: row.inputs ?? null,
    steps: steps.map((s) => ({
      job: s.job,
      name: s.name,
      status: s.status,
      exitCode: s.exit_code ?? null,
      // The attempt number and sandbox host of the step's latest run (CONTRACT "Extended surface").
      attempt: s.attempt ?? null,
      host: s.host ?? null,
      runAttempt: Number(s.run_attempt ?? 1),
      startedAt: s.started_at ?? null,
      finishedAt: s.finished_at ?? null,
    })),
  };
}


export class RunService {
  constructor(
    /** Runs live in their tenant's shard database (ADR 0025). */
    private readonly router: ShardRouter,
    private readonly redis: Redis,
    private readonly store: ObjectStore,
    private readonly temporal: () => Promise<Client>,
    private readonly resolveRef?: RefResolver,
    private readonly readPipelineFile?: PipelineFileReader,
  ) {}

  /**
   * Starts a pipeline run of a ref by hand (like GitHub's workflow_dispatch: the file's push filters
   * do not apply). Written to the same outbox as pushes, in one transaction with the run row, so the
   * git-server's relay starts it exactly once; answered 202 with the run's id at once.
   */
  async create(principal: Principal, owner: string, repoName: string, body: unknown, requestId?: string) {
    const repo = await requireRepoWrite(await tenantDirectory(this.router).dbOfOwner(owner), principal, owner, repoName, 'starting a run');
    const { ref, inputs: given } = parseBody(createRunBody, body);
    const target = this.resolveRef ? await this.resolveRef(repo.owner, repo.name, ref) : undefined;
    if (!target) throw new NotFoundError(`ref ${ref} not found in ${repo.owner}/${repo.name}`);
    const inputs = await this.manualInputs(repo.owner, repo.name, target, given);
    const runId = pipelineWorkflowId(repo.owner, repo.name, `manual-${randomUUID()}`);
    const input: PipelineInput = {
      runId,
      tenantId: repo.tenantId,
      tenant: repo.owner,
      repoId: repo.id,
      repo: repo.name,
      ref: target.ref,
      commit: target.commit,
      event: 'manual',
      actor: principal.username,
      ...(inputs ? { inputs } : {}),
    };
    await inTransaction(this.router.forTenant(repo.tenantId), async (c) => {
      await insertQueuedRun(c, { tenantId: repo.tenantId, runId, repoId: repo.id, ref: target.ref, commit: target.commit, event: 'manual', inputs });
      await enqueuePipelineStart(c, repo.tenantId, runId, input);
    });
    await audit(this.router.forTenant(repo.tenantId), { tenantId: repo.tenantId, actor: principal.username, action: 'run.create', target: runId, detail: { ref: target.ref, commit: target.commit }, requestId });
    const self = `/api/v1/runs/${encodeURIComponent(runId)}`;
    return { id: runId, status: 'queued', ref: target.ref, commit: target.commit, links: { self, events: `${self}/events` } };
  }

  /**
   * A hand-started run's inputs (issue 17 item 6): the values given, checked against the inputs the
   * pipeline file at the commit declares (on.manual.inputs), with defaults for the others; 400
   * naming the input that is wrong. Undefined when the file declares none and none are given (an
   * invalid or missing file fails the run itself, as before, unless inputs were given).
   */
  private async manualInputs(owner: string, repoName: string, target: { ref: string; commit: string }, given: Record<string, unknown> | undefined): Promise<Record<string, string> | undefined> {
    const text = this.readPipelineFile ? await this.readPipelineFile(owner, repoName, target.commit) : null;
    const at = `${target.ref} (${target.commit.slice(0, 12)})`;
    let declared;
    try {
      declared = text === null ? undefined : parsePipeline(text).on.manual?.inputs;
    } catch (err) {
      if (!(err instanceof PipelineSpecError)) throw err;
      if (given && Object.keys(given).length > 0) throw new InputError(`${PIPELINE_PATH} at ${at} is not valid, so its inputs cannot be checked: ${err.message}`);
      return undefined;
    }
    if (!declared) {
      if (given && Object.keys(given).length > 0) throw new InputError(`input "${Object.keys(given)[0]}": ${text === null ? `there is no ${PIPELINE_PATH} at ${at}` : `${PIPELINE_PATH} at ${at} declares no on.manual.inputs`}`);
      return undefined;
    }
    try {
      return resolveInputs(declared, given);
    } catch (err) {
      if (err instanceof InputValueError) throw new InputError(err.message);
      throw err;
    }
  }

  /** The run row, if the caller may read its repository; otherwise not found (nothing leaks). */
  private async readableRun(principal: Principal | null | undefined, id: string) {
    if (id.length > 300) throw new InputError('run id is too long');
    return findReadableRepoRow(await tenantDirectory(this.router).dbOfWorkflowId(id), principal, 'runs', id, 'run');
  }

  async get(principal: Principal | null | undefined, id: string, query: { attempt?: unknown } = {}) {
    const { row } = await this.readableRun(principal, id);
    const db = this.router.forTenant(Number(row.tenant_id));
    const attempts = await runAttemptsView(db, row.tenant_id, row);
    // Issue 17 item 5: `?attempt=N` shows an earlier attempt as it ended.
    const earlier = query.attempt === undefined ? undefined : await earlierAttempt(db, row.tenant_id, row, Number(query.attempt), attempts);
    if (earlier) return { ...runView(earlier.row, earlier.steps), attempts };
    return { ...runView(row, await listSteps(db, row.tenant_id, id)), attempts };
  }

  async list(principal: Principal | null | undefined, owner: string, name: string, q: { commit?: unknown; ref?: unknown; status?: unknown }) {
    const { repo } = await findReadableRepo(await tenantDirectory(this.router).dbOfOwner(assertValidName('owner', owner)), principal, owner, assertValidName('repo', name));
    const valid = (v: unknown, check: (s: string) => boolean, what: string): string | undefined => {
      if (v === undefined) return undefined;
      if (typeof v !== 'string' || !check(v)) throw new InputError(`${what} is not valid`);
      return v;
    };
    const rows = await listRuns(this.router.forTenant(repo.tenantId), repo.id, {
      commit_sha: valid(q.commit, (s) => /^[0-9a-f]{40,64}$/.test(s), 'commit'),
      ref: valid(q.ref, (s) => refField.safeParse(s).success, 'ref'),
      status: valid(q.status, (s) => STATUSES.includes(s), 'status'),
    });
    // Each run's steps counted by status rather than listed (GET /runs/{id} lists them): one query for the page.
    const counts = await countStepsByStatus(this.router.forTenant(repo.tenantId), repo.tenantId, rows.map((row) => String(row.id)));
    return {
      runs: rows.map((row) => {
        const { steps: _, ...run } = runView(row);
        return { ...run, stepsSummary: stepsSummary(counts.get(String(row.id)) ?? {}) };
      }),
    };
  }

  /**
   * A step's whole log, as a stream of chunks: from the object store (gunzipped on the way) once the
   * step ended, from the live Redis stream (read in pages) before. Nothing is held whole in memory.
   * Permission and existence are checked before the first chunk, so errors still become 4xx.
   */
  async logs(principal: Principal | null | undefined, id: string, q: Record<string, unknown>): Promise<AsyncIterable<string | Buffer>> {
    const job = queryParam(q, 'job');
    const step = queryParam(q, 'step');
    const { row } = await this.readableRun(principal, id);
    const steps = await listStepLogKeys(this.router.forTenant(Number(row.tenant_id)), row.tenant_id, id, { job, step });
    if (steps.length === 0) throw new NotFoundError(job || step ? 'no such job or step in this run' : 'this run has no steps yet');
    const single = job !== undefined && step !== undefined;
    const stored = await Promise.all(steps.map(async (s) => (s.log_key && (await this.store.exists(s.log_key)) ? (s.log_key as string) : undefined)));
    const { store, redis } = this;
    return (async function* () {
      for (const [i, s] of steps.entries()) {
        if (!single) yield `== ${s.job} / ${s.name} ==\n`;
        const key = stored[i];
        if (key) {
          yield* (await store.get(key)).pipe(createGunzip());
          continue;
        }
        for (let start = '-'; ; ) {
          const page = (await redis.xrange(logStreamKey(id), start, '+', 'COUNT', 1000)) as [string, string[]][];
          const lines = page.map(([, f]) => streamFields(f)).filter((e) => !e.event && e.job === s.job && e.step === s.name);
          if (lines.length) yield lines.map((e) => `${e.line}\n`).join('');
          if (page.length < 1000) break;
          start = `(${page[page.length - 1][0]}`;
        }
      }
    })();
  }

  /**
   * The run's live events (CONTRACT `GET /runs/{id}/events`) after `after` (a Last-Event-ID),
   * ending with its terminal status. Access is checked before the first event.
   */
  async events(principal: Principal | null | undefined, id: string, after: string, signal: AbortSignal): Promise<AsyncIterable<RunEvent>> {
    const { row } = await this.readableRun(principal, id);
    return followRowEvents(this.router.forTenant(Number(row.tenant_id)), this.redis, 'runs', { tenantId: Number(row.tenant_id), id }, after, signal);
  }


  async artifacts(principal: Principal | null | undefined, id: string) {
    const { row } = await this.readableRun(principal, id);
    const rows = await listArtifacts(this.router.forTenant(Number(row.tenant_id)), row.tenant_id, id);
    return { artifacts: rows.map((a) => ({ job: a.job, path: a.path, size: Number(a.size), sha256: a.sha256, createdAt: a.created_at })) };
  }

  /** The bytes of an artifact; `job` picks one when several jobs uploaded the same path (default: the latest). */
  async artifact(principal: Principal | null | undefined, id: string, filePath: string, q: Record<string, unknown> = {}): Promise<{ size: number; stream: Readable }> {
    const job = queryParam(q, 'job');
    const { row } = await this.readableRun(principal, id);
    const found = await findArtifact(this.router.forTenant(Number(row.tenant_id)), row.tenant_id, id, filePath, job);
    if (!found) throw new NotFoundError(`artifact ${filePath} not found in run ${id}`);
    return { size: Number(found.size), stream: await this.store.get(found.object_key) };
  }

  async cancel(principal: Principal | null | undefined, id: string): Promise<void> {
    const p = requirePrincipal(principal);
    const { row, access } = await this.readableRun(p, id);
    if (!atLeast(access, 'write')) throw new NotAllowedError('cancelling a run needs write access');
    requireScope(p, 'write');
    if (['success', 'failure', 'cancelled'].includes(row.status)) return;
    // A run whose workflow the relay has not started yet is cancelled right here: stamping its
    // outbox row (which waits for the relay's lock if it is starting it now) keeps it from starting.
    if (await cancelUnstartedRun(this.router.forTenant(Number(row.tenant_id)), row.tenant_id, id)) return;
    try {
      const client = await this.temporal();
      await client.workflow.getHandle(id).cancel();
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return; // it ended meanwhile
      throw new UnavailableError(`could not reach Temporal to cancel the run: ${(err as Error).message}`);
    }
  }
}
