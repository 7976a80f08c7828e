import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { ShardRouter } from '../../core/shard-router';
import { tenantDirectory } from '../../core/tenant-directory';
import { InputError, NotAllowedError, NotFoundError, UnavailableError } from '../../core/errors';
import { assertValidName } from '../../core/names';
import type { ObjectStore } from '../../core/object-store';
import { atLeast, repoAccess, type Access, type Principal } from '../../core/principal';
import { findReadableRepo, findReadableRepoRow } from '../../core/repos';
import { cancelUnstartedScheduledRun, cancelUnstartedRun, countStepsByStatus, findArtifact, insertQueuedRun, listArtifacts, listRuns, listStepLogKeys, listSteps } from '../../core/stores/runs-store';
import { enqueueRunRequest } from '../../core/stores/outbox-store';
import { currentTraceparent } from '../../core/tracing';
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
import { listAttemptStepLogKeys } from '../../core/stores/run-attempts-store';
import { createRunBody, recentRunsQuery, type StepsSummary } from '../schemas/runs';
import { jobPendingReasons, runPendingReason } from '../../core/pending-reasons';
import { SANDBOX_QUEUE } from '../../core/run-types';
import { listRecentRunsOf } from '../../core/stores/recent-runs-store';
import { fanOut } from '../../core/shard-databases';
import { fileNeeds, jobGraph, type FileNeeds } from '../../core/job-graph';

const STATUSES = ['queued', 'running', 'success', 'failure', 'cancelled'];

/** A run's steps by status (api/schemas/runs.ts StepsSummary). */
function stepsSummary(by: Record<string, number>): StepsSummary {
  const n = (s: string) => by[s] ?? 0;
  return { total: Object.values(by).reduce((a, b) => a + b, 0), queued: n('queued'), running: n('running'), success: n('success'), failure: n('failure'), cancelled: n('cancelled'), skipped: n('skipped') };
}

function runView(row: Record<string, unknown>, steps: Record<string, unknown>[] = [], backlog?: number) {
  // Issue 17 item 8: why the run and each waiting job wait (core/pending-reasons.ts).
  const waits = steps.map((s) => ({ job: String(s.job), status: String(s.status), waiting: s.waiting as string | null, needs: s.needs as string[] | null }));
  const jobs = jobPendingReasons(String(row.status), waits, backlog);
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
    pending: runPendingReason({ status: String(row.status), message: row.message as string | null }, jobs, waits),
    steps: steps.map((s) => ({
      pending: jobs.get(String(s.job)) ?? null,
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
    /** Called once a run's start is committed to the outbox (kicks the api's relay, api/main.ts). */
    private readonly onRunQueued?: () => void,
  ) {}

  /**
   * Starts a pipeline run of a ref by hand (like GitHub's workflow_dispatch: the file's push filters
   * do not apply). Written to the api's own outbox (`run_request_outbox`, ADR 0024) in one transaction
   * with the run row, so the api's relay starts it exactly once (by its run id), even after a crash
   * or while Temporal is down; answered 202 with the run's id at once.
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
      // The request's trace, which the relay's start continues (README: tracing).
      await enqueueRunRequest(c, repo.tenantId, runId, input, currentTraceparent() ?? null);
    });
    this.onRunQueued?.();
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
    const current = earlier ? [] : await listSteps(db, row.tenant_id, id);
    const backlog = !earlier && row.status === 'running' && current.some((st) => st.status === 'queued') ? await this.sandboxBacklog() : undefined;
    const view = earlier ? runView(earlier.row, earlier.steps) : runView(row, current, backlog);
    return { ...view, jobs: await this.jobGraphOf(row, view.steps), attempts };
  }

  /** What each file's needs are, by repository and commit (a commit's file never changes); the newest 500. */
  private readonly needsByCommit = new Map<string, FileNeeds | undefined>();

  /**
   * The run's jobs with the jobs each needs (issue 18: the run page's graph), from the pipeline file
   * at its commit (core/job-graph.ts). A file that cannot be read now leaves the jobs without edges
   * rather than failing the run's answer (and is not remembered, so a later answer has them).
   */
  private async jobGraphOf(row: Record<string, unknown>, steps: Array<{ job: unknown }>) {
    const jobs = [...new Set(steps.map((s) => String(s.job)))];
    const key = `${row.tenant_id}/${row.repo_id}/${row.commit_sha}`;
    if (jobs.length > 0 && !this.needsByCommit.has(key) && this.readPipelineFile) {
      try {
        const text = await this.readPipelineFile(String(row.owner), String(row.repo_name), String(row.commit_sha));
        let file: FileNeeds | undefined;
        try {
          file = text === null ? undefined : fileNeeds(parsePipeline(text));
        } catch (err) {
          if (!(err instanceof PipelineSpecError)) throw err;
        }
        this.needsByCommit.set(key, file);
        if (this.needsByCommit.size > 500) this.needsByCommit.delete(this.needsByCommit.keys().next().value!);
      } catch {
        // Unreadable now (git-server down, repository moving): no edges this time.
      }
    }
    return jobGraph(this.needsByCommit.get(key), jobs);
  }

  private backlog?: { at: number; value: Promise<number | undefined> };

  /**
   * The sandbox queue's backlog as Temporal estimates it (issue 17 item 8: "no sandbox host free,
   * backlog N"), asked at most every 2 s and given 1 s; undefined when Temporal does not answer.
   */
  private sandboxBacklog(): Promise<number | undefined> {
    if (this.backlog && Date.now() - this.backlog.at < 2000) return this.backlog.value;
    const ask = (async () => {
      const client = await this.temporal();
      const r = await client.workflowService.describeTaskQueue({ namespace: client.options.namespace, taskQueue: { name: SANDBOX_QUEUE }, taskQueueType: 2 /* ACTIVITY */, reportStats: true });
      const n = r.stats?.approximateBacklogCount;
      return n === undefined || n === null ? undefined : Number(n);
    })();
    const value = Promise.race([ask, new Promise<undefined>((resolve) => setTimeout(resolve, 1000))]).catch(() => undefined);
    this.backlog = { at: Date.now(), value };
    return value;
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
    const attempt = queryParam(q, 'attempt');
    if (attempt !== undefined && !/^[1-9]\d{0,5}$/.test(attempt)) throw new InputError('attempt must be a whole number from 1');
    const { row } = await this.readableRun(principal, id);
    const db = this.router.forTenant(Number(row.tenant_id));
    // ADR 0037: ?attempt=N reads an earlier attempt's stored logs (the keys it left); default the latest.
    const earlier = attempt !== undefined && Number(attempt) !== Number(row.attempt ?? 1);
    if (earlier && Number(attempt) > Number(row.attempt ?? 1)) throw new NotFoundError(`run ${id} has no attempt ${attempt}`);
    const steps = earlier ? await listAttemptStepLogKeys(db, row.tenant_id, id, Number(attempt), { job, step }) : await listStepLogKeys(db, row.tenant_id, id, { job, step });
    if (steps.length === 0) throw new NotFoundError(job || step ? `no such job or step in this run${earlier ? `'s attempt ${attempt}` : ''}` : 'this run has no steps yet');
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
        // An earlier attempt's step that left no stored log (it never ran): nothing, not today's live lines.
        if (earlier) continue;
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
    let client: Client | undefined;
    try {
      client = await this.temporal();
      await client.workflow.getHandle(id).cancel();
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) {
        // It ended meanwhile, or it is a scheduled run recorded but not started yet (no start row:
        // its activity starts it, ADR 0024), which is cancelled here if still so under its lock.
        // Not knowing (Temporal unreachable) counts as started: the run is left to its workflow.
        const started = () => client!.workflow.getHandle(id).describe().then(() => true, (e) => !(e instanceof WorkflowNotFoundError));
        await cancelUnstartedScheduledRun(this.router.forTenant(Number(row.tenant_id)), row.tenant_id, id, started);
        return;
      }
      throw new UnavailableError(`could not reach Temporal to cancel the run: ${(err as Error).message}`);
    }
  }

  /**
   * `GET /api/v1/runs` (issue 18): the newest runs across the repositories of the caller's tenant and
   * those granted to the caller, from every database (a grant may be in another tenant's shard),
   * merged newest first. Public repositories of other tenants are not "yours" and are left out;
   * each row still passes the one access rule (token scopes included). Signed in only.
   */
  async recent(principal: Principal | null | undefined, query: Record<string, unknown>) {
    const p = requirePrincipal(principal);
    const q = parseBody(recentRunsQuery, query);
    const limit = q.limit === undefined ? 50 : Number(q.limit);
    const filter = { tenantId: p.tenantId ?? null, userId: p.userId ?? null, ref: q.ref, status: q.status, event: q.event, commit: q.commit, limit };
    const perDb = await fanOut(this.router, async (db, d) => {
      // The shards placed on this database only: a moved shard's old copy is not listed again.
      const rows = (await listRecentRunsOf(db, { ...filter, shards: d.scope })).filter(
        (r) => repoAccess(p, { tenantId: Number(r.tenant_id), visibility: r.visibility }, (r.grant ?? undefined) as Access | undefined) !== 'none',
      );
      const counts = new Map<string, Record<string, number>>();
      for (const tenant of new Set(rows.map((r) => Number(r.tenant_id)))) {
        const ids = rows.filter((r) => Number(r.tenant_id) === tenant).map((r) => String(r.id));
        for (const [id, c] of await countStepsByStatus(db, tenant, ids)) counts.set(id, c);
      }
      return rows.map((row) => ({ row, counts: counts.get(String(row.id)) ?? {} }));
    });
    const newest = perDb
      .flat()
      .sort((a, b) => new Date(String(b.row.created_at)).getTime() - new Date(String(a.row.created_at)).getTime() || String(b.row.id).localeCompare(String(a.row.id)))
      .slice(0, limit);
    return {
      runs: newest.map(({ row, counts }) => {
        const { steps: _, ...run } = runView(row);
        return { ...run, stepsSummary: stepsSummary(counts) };
      }),
    };
  }
}
