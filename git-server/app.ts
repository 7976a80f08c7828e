import express, { type Request } from 'express';
import path from 'node:path';
import { promises as fs } from 'node:fs';
import type { Db } from '../core/db';
import { pingDatabase } from '../core/stores/server-store';
import type { ShardRouter } from '../core/shard-router';
import { isShardFenced, retryWhenFenced, SHARD_FENCED_RETRY_AFTER_SECONDS, shardFenced } from '../core/shard-fence';
import { dbUnavailable } from '../core/db-leader';
import { TenantDirectory } from '../core/tenant-directory';
import { AuthenticationError, ConflictError, InputError, NotAllowedError, NotFoundError, PayloadTooLargeError, UnavailableError } from '../core/errors';
import { acquireRedisLock } from '../core/redis-lock';
import type { Redis } from '../core/redis';
import { FileTooLargeError, readFileAtCommit, repoPath, resolveRef, runGit } from '../core/git';
import { MAX_PIPELINE_FILE_BYTES, PIPELINE_PATH } from '../core/pipeline-spec';
import { errorMiddleware, healthAndMetrics, requestLogger, requireIdentity, route, traceIdOf } from '../core/http';
import { httpMetrics } from '../core/metrics';
import { contextFrom, currentTraceparent, inSpan, traceRequests } from '../core/tracing';
import { SERVICE_HEADER, verifyServiceToken } from '../core/internal-identity';
import type { Logger } from '../core/logger';
import { withLogContext, type LogFields } from '../core/log-context';
import { assertValidName } from '../core/names';
import { atLeast } from '../core/principal';
import { accessTo, findRepo, type RepoRow } from '../core/repos';
import { recordPush, startPushReads, updateKey } from './push-recorder';
import { appendAudit } from '../core/stores/audit-store';
import { journalAborted, journalPrepared, postReceiveGuard } from './push-journal';
import { acquireAdvisoryLock } from './advisory-lock';
import type { RepoTarget } from '../core/run-types';
import { assertHookOrder, type HookAnswer, type HookName, type HookRequest } from './hook-channel';
import { httpErrorOf } from '../core/http-errors';
import { withDeadline } from '../core/deadline';
import { badRefName, loadProtections, parseUpdates, type HookClaims } from './hook-support';
import { protectionViolation } from '../core/protections';
import { advertiseRefs, gitProtocolEnv, newPushId, readRequestBody, runService, startUploadPack, type GitService } from './smart-http';
import { PackCache } from './pack-cache';
import { PACK_VOLUME_HEADER } from '../core/pack-handoff';
import { AdvertisementCache } from './advertisement-cache';
import { FingerprintCache } from './fingerprint-cache';
import type { RepoGenerations } from './repo-generation';
import { RepoWriteLocks } from './write-lock';
import { KeyedLimiter } from './concurrency-limiter';
import { createLfsRouter, type LfsRouterOptions } from './lfs/router';
import type { ReplicaZone } from '../core/replica-zones';
import { fingerprintOf, readRefs } from '../core/replica-sync';
import { readableCopy } from './read-failover';
import { createReplicaReceiver } from './replica-receiver';
import { createNodeRouter } from './node-router';
import { createSourceArchive } from './source-archive';
import { createRepoBrowseRoutes } from './repo-browse';
import { createRepoMoveRoutes } from './repo-move';
import { configureHostedRepo } from './hosted-repo';
import { assertWritableHere } from '../core/repo-moves';
import { adoptPushedBranch, createDefaultBranchRoute } from './default-branch';
import { recordDefaultBranch } from '../core/stores/default-branch-store';

export interface GitServerOptions {
  /** The global database (storage nodes); every database when there is no router (tests of their own database). */
  db: Db;
  /** Routes a repository's rows to its tenant's shard database (ADR 0025). */
  router?: ShardRouter;
  log: Logger;
  reposDir: string;
  internalSecret: string;
  publicUrl: string;
  onPushRecorded: () => void;
  /** Called when a repository has had many pushes since its last repack (starts maintenance). */
  onMaintenanceDue?: (target: RepoTarget) => void;
  limits: { maxPushBytes: number; uploadPackConcurrency: number; uploadPackQueue: number };
  /** Answers of fetches, shared by identical requests (Gitaly's pack-objects cache). */
  packCache: PackCache;
  /** Shared state for cross-instance write locks (optional). */
  redis?: Redis;
  /** Repository generations that key the ref-advertisement cache. */
  generations: RepoGenerations;
  healthChecks: Record<string, () => Promise<unknown>>;
  /** Behind `/readyz` (ADR 0028): every dependency (Postgres, Redis, Temporal); default `healthChecks`. */
  readyChecks?: Record<string, () => Promise<unknown>>;
  /** Where Git LFS objects go; without it the LFS API is not served. */
  lfsStore?: LfsRouterOptions['store'];
  /** Replica zones: pushes are queued for replication, and fetches fail over to an up-to-date root zone. */
  replicaZones?: ReplicaZone[];
  /** Called after a push queued its replication (starts the replication relay's pass). */
  onReplicationQueued?: () => void;
  /** This git-server's name in the push journal (push-journal.ts instanceName). */
  instance?: string;
  /** Pool whose connections hold repository write locks while Redis does not answer (default: db). */
  lockDb?: Db;
  /**
   * Test hook (DOTGIT_TEST_STALL_AFTER_REF_UPDATE): after a push's refs are updated and before its
   * post-receive work is recorded, write this file (repository and new shas) and never answer, so
   * a test can kill the git-server at that instant. Unset in production.
   */
  stallAfterRefUpdate?: string;
  /** This storage node (ADR 0014): requests for repositories placed on other nodes are sent on to them. */
  node?: { id: string; url: string };
}

const HOOKS_DIR = path.resolve(__dirname, 'hooks');
/** receive-pack settings that must hold both when refs are advertised and when the push runs. */
const RECEIVE_PACK_CONFIG = ['-c', 'receive.advertisePushOptions=true'];

export function createGitServerApp(o: GitServerOptions) {
  const app = express();
  // A repository's rows (and its runs, journal, outbox rows) live in its tenant's shard (ADR 0025).
  const dbOf = (tenantId: number) => o.router?.forTenant(tenantId) ?? o.db;
  const tenants = o.router && new TenantDirectory(o.router);
  /** The shard database of a tenant named in a URL; an unknown tenant's lookups find nothing anywhere. */
  const dbOfOwner = async (owner: string) => (tenants ? (await tenants.shardOfName(owner))?.db : undefined) ?? o.db;
  const locks = new RepoWriteLocks();
  const advertisements = new AdvertisementCache();
  const fingerprints = new FingerprintCache();
  /**
   * One writer per repository: in this process (FIFO), and across git-server instances through
   * Redis. When Redis does not answer in time (every call is bounded by the client's command
   * timeout), a Postgres advisory lock takes its place, so pushes go on while Redis is down.
   */
  async function writeLock(repoName: string, log: Logger): Promise<() => void> {
    const releaseLocal = await locks.acquire(repoName);
    try {
      const releaseShared = await sharedWriteLock(repoName, log);
      return () => {
        void releaseShared().finally(releaseLocal);
      };
    } catch (err) {
      releaseLocal();
      throw err;
    }
  }
  async function sharedWriteLock(repoName: string, log: Logger): Promise<() => Promise<void>> {
    if (!o.redis) return async () => undefined; // one instance, no Redis: the local lock is the lock
    try {
      return await acquireRedisLock(o.redis, `dotgit:lock:repo:${repoName}`, `repository ${repoName}`, { log });
    } catch (err) {
      if (err instanceof UnavailableError) throw err; // busy: another writer holds it
      log.warn({ err, repo: repoName }, 'Redis lock unavailable; using a Postgres advisory lock');
      return acquireAdvisoryLock(o.lockDb ?? o.db, `repo:${repoName}`, `repository ${repoName}`);
    }
  }
  /**
   * Pushes whose hook call failed on our side: a shard move's fence (ADR 0026) or a database that
   * did not answer (a failover). git's failure is then a 503 + Retry-After, never a 400.
   */
  const troubledPushes = new Map<string, 'fenced' | 'unavailable'>();
  /** When a hook call last found the database away: a push that failed since then failed on us. */
  let databaseTroubleAt = 0;
  const noteTrouble = (pushId: string, err: unknown): void => {
    if (isShardFenced(err)) troubledPushes.set(pushId, 'fenced');
    else if (dbUnavailable(err)) {
      troubledPushes.set(pushId, 'unavailable');
      databaseTroubleAt = Date.now();
    }
  };
  /** After the ref update a hook's write must not be lost to a fence: it waits the move out (refresh, retry). */
  const waitingOutFence = <T>(fn: () => Promise<T>): Promise<T> => (o.router ? retryWhenFenced(o.router, fn) : fn());
  const fetches = new KeyedLimiter({ concurrency: o.limits.uploadPackConcurrency, queue: o.limits.uploadPackQueue, maxWaitMs: 60_000 });
  app.disable('x-powered-by');
  app.use(httpMetrics('git-server'));
  app.use(traceRequests('git-server'));
  app.use(healthAndMetrics(o.healthChecks, undefined, o.readyChecks));
  if (o.node) app.use(createNodeRouter({ db: o.db, dbOfOwner, log: o.log, internalSecret: o.internalSecret, nodeId: o.node.id, nodeUrl: o.node.url }));

  // Internal API: repository creation (from the api service).
  app.post('/internal/repos', express.json(), route(async (req, res) => {
    await verifyServiceToken(o.internalSecret, req.header(SERVICE_HEADER)).catch((e: Error) => {
      throw new AuthenticationError(e.message);
    });
    const owner = assertValidName('owner', req.body?.owner);
    const name = assertValidName('name', req.body?.name);
    const dir = repoPath(o.reposDir, owner, name);
    if (await fs.stat(dir).then(() => true, () => false)) {
      // The api calls this inside the transaction that inserts the repository's row, so the name is
      // free in the database. A directory without refs is what an earlier attempt left when its
      // transaction then failed (a database failover: that client got 503 and resends); it is taken
      // over, or the name would answer 409 for good. One with refs is data: refused.
      const refs = await runGit(['--git-dir', dir, 'for-each-ref', '--count=1']);
      if (refs.code !== 0 || refs.stdout.length > 0) throw new ConflictError(`repository ${owner}/${name} exists on disk`);
    } else {
      await fs.mkdir(path.dirname(dir), { recursive: true });
      const r = await runGit(['init', '--bare', '--quiet', '--initial-branch=main', dir]);
      if (r.code !== 0) throw new Error(`git init failed: ${r.stderr}`);
    }
    await configureHostedRepo(dir);
    res.status(201).json({ owner, name });
  }));

  // Internal API: what a ref names (the api resolves deploy refs here, where the repositories live).
  app.post('/internal/repos/resolve', express.json(), route(async (req, res) => {
    await verifyServiceToken(o.internalSecret, req.header(SERVICE_HEADER)).catch((e: Error) => {
      throw new AuthenticationError(e.message);
    });
    const owner = assertValidName('owner', req.body?.owner);
    const name = assertValidName('name', req.body?.name);
    const ref = typeof req.body?.ref === 'string' ? req.body.ref : '';
    const found = await resolveRef(repoPath(o.reposDir, owner, name), ref);
    if (!found) throw new NotFoundError(`ref ${JSON.stringify(ref.slice(0, 100))} not found in ${owner}/${name}`);
    res.json(found);
  }));

  // Internal API: the pipeline file at a commit (the api checks a deploy's environment against it).
  // Only that one file: the api has no business reading anything else from repositories.
  app.post('/internal/repos/pipeline-file', express.json(), route(async (req, res) => {
    await verifyServiceToken(o.internalSecret, req.header(SERVICE_HEADER)).catch((e: Error) => {
      throw new AuthenticationError(e.message);
    });
    const owner = assertValidName('owner', req.body?.owner);
    const name = assertValidName('name', req.body?.name);
    const commit = typeof req.body?.commit === 'string' && /^[0-9a-f]{40,64}$/.test(req.body.commit) ? req.body.commit : undefined;
    if (!commit) throw new InputError('commit must be a full commit id');
    try {
      res.json({ text: (await readFileAtCommit(repoPath(o.reposDir, owner, name), commit, PIPELINE_PATH, MAX_PIPELINE_FILE_BYTES)) ?? null });
    } catch (err) {
      if (err instanceof FileTooLargeError) throw new PayloadTooLargeError(err.message);
      throw err;
    }
  }));

  // Internal API: branches, tags, history, trees and files for the api's repository browser (ADR 0034).
  app.use(createRepoBrowseRoutes({ reposDir: o.reposDir, internalSecret: o.internalSecret }));
  // Internal API: a commit's files as a tar, for sandbox hosts (authorised by a job credential).
  app.use(createSourceArchive({ reposDir: o.reposDir, internalSecret: o.internalSecret }));
  // Internal API: the api's change of a repository's default branch (HEAD).
  app.use(createDefaultBranchRoute({ db: o.db, dbOfOwner, reposDir: o.reposDir, internalSecret: o.internalSecret, onChanged: (name) => o.generations.bump(name) }));

  /**
   * A push's hooks, as its receive-pack's channel hands them over (ADR 0047), each in the push's
   * log context (issue 14 item 5): every line written while handling one names the push's request,
   * trace, tenant and repository, as the push request's own lines do. A failure is the hook's
   * `error <status>` (a gate then refuses the push), mapped as the HTTP routes map errors.
   */
  const serveHooks = (claims: HookClaims) => {
    const push: PushHookState = { pushOptions: [], seen: [], fastForwards: new Set() };
    return (request: HookRequest): Promise<HookAnswer> => answerHook(claims, request, push);
  };
  const answerHook = (claims: HookClaims, request: HookRequest, push: PushHookState): Promise<HookAnswer> => {
    const fields: LogFields = { requestId: claims.requestId, traceId: claims.traceId, tenant: claims.tenant, repo: `${claims.tenant}/${claims.repo}` };
    return withLogContext(fields, async (): Promise<HookAnswer> => {
      try {
        assertHookOrder(push.seen, request.hook);
        push.seen.push(request.hook);
        // A database that hangs without failing must not hold the push (and its repository's write
        // lock) forever: the gate gives up, as curl's --max-time did. The work itself may still end.
        const answer = await withDeadline(hookHandlers[request.hook](claims, request, push), HOOK_DEADLINE_MS, () => new UnavailableError(`the ${request.hook} hook's work took longer than ${HOOK_DEADLINE_MS / 1000} s`, 5));
        return { verdict: answer.allow === false ? 'deny' : 'ok', messages: answer.messages };
      } catch (thrown) {
        noteTrouble(claims.pushId, thrown);
        const err = shardFenced(thrown) ?? dbUnavailable(thrown) ?? thrown;
        const mapped = httpErrorOf(err);
        if (mapped) o.log.warn({ err }, `${request.hook} hook failed`);
        else o.log.error({ err }, `${request.hook} hook failed`);
        return { verdict: 'error', status: mapped?.status ?? 500, messages: [] };
      }
    });
  };

  app.use(createReplicaReceiver({ reposDir: o.reposDir, internalSecret: o.internalSecret, log: o.log, writeLock, onReceived: (name) => o.generations.bump(name) }));
  // Moving repositories between nodes (workflows/move.ts): copies, the write fence's barrier, drops.
  if (o.node) app.use(createRepoMoveRoutes({ db: o.db, dbOfOwner, log: o.log, reposDir: o.reposDir, internalSecret: o.internalSecret, nodeId: o.node.id, writeLock, onChanged: (name) => o.generations.bump(name) }));

  /** What one push's hooks hand on to the next: push options reach only pre-receive and post-receive. */
  interface PushHookState {
    pushOptions: string[];
    /** The hooks asked so far, in order (assertHookOrder). */
    seen: HookName[];
    /** The updates pre-receive found fast-forward (updateKey): post-receive classifies them without git. */
    fastForwards: Set<string>;
  }
  type HookHandler = (claims: HookClaims, request: HookRequest, push: PushHookState) => Promise<{ allow?: boolean; messages: string[] }>;

  const hookHandlers: Record<HookName, HookHandler> = {
    // Gates the push: ref names and branch protections.
    async 'pre-receive'(claims, request, push) {
      const updates = parseUpdates(request.updates);
      push.pushOptions = request.pushOptions;
      push.fastForwards = new Set(updates.filter((u) => !u.nonFastForward).map(updateKey));
      const rules = await loadProtections(dbOf(claims.tenantId), claims.tenantId, claims.repoId);
      const problems: string[] = [];
      for (const u of updates) {
        const bad = badRefName(u.ref) ?? protectionViolation(u, rules, claims.actor);
        if (bad) problems.push(`dotgit: rejected ${u.ref}: ${bad}`);
      }
      // A refused push is evidence too: who tried to rewrite or delete a protected branch.
      if (problems.length > 0) {
        await appendAudit(dbOf(claims.tenantId), { tenantId: claims.tenantId, actor: claims.actor, action: 'repo.push.refused', target: `${claims.tenant}/${claims.repo}`, detail: { updates, problems }, requestId: claims.requestId });
      }
      return { allow: problems.length === 0, messages: problems };
    },

    // git's reference-transaction hook: `prepared` journals the updates before they become visible
    // (a failure here aborts them: no journal, no ref update); `aborted` marks them dropped. The
    // hook makes no call for `committed` (ADR 0047): post-receive records what moved.
    async 'reference-transaction'(claims, request, push) {
      const updates = parseUpdates(request.updates);
      if (request.state === 'prepared') {
        await journalPrepared(dbOf(claims.tenantId), claims, updates, { instance: o.instance, pushOptions: push.pushOptions });
      } else if (request.state === 'aborted') {
        await journalAborted(dbOf(claims.tenantId), claims, updates);
      } else {
        throw new InputError('state must be prepared or aborted (the states the hook journals)');
      }
      return { messages: [] };
    },

    // Records the push: runs, webhooks, replication; its messages name the runs started.
    async 'post-receive'(claims, request, push) {
      const updates = parseUpdates(request.updates);
      if (o.stallAfterRefUpdate) {
        // The refs are on disk, nothing of the push is recorded: the test kills this process now.
        await fs.writeFile(o.stallAfterRefUpdate, `${claims.tenant}/${claims.repo} ${updates.map((u) => u.newSha).join(' ')}\n`);
        await new Promise<never>(() => undefined);
      }
      // GitLab's `git push -o ci.skip`: the push lands, no pipeline starts.
      const skip = request.pushOptions.includes('ci.skip');
      const gitDir = repoPath(o.reposDir, claims.tenant, claims.repo);
      // Recording's git reads start now, to overlap the refs' (each is a git process).
      const reads = startPushReads(gitDir, updates, { skipPipelines: skip, fastForwards: push.fastForwards });
      // The refs this push left (the hook runs under the write lock): what an up-to-date replica must hold.
      const refs = await readRefs(gitDir);
      // The first branch pushed to an empty repository becomes its default (HEAD), before replication
      // reads the repository (HEAD is not among the refs, so the fingerprint stays as it is).
      const adopted = await adoptPushedBranch(gitDir, updates, refs);
      if (adopted) await recordDefaultBranch(dbOf(claims.tenantId), claims.repoId, adopted);
      const refsFingerprint = fingerprintOf(refs);
      // The refs have changed: drop cached advertisements now, before git answers the pusher (the
      // bump after receive-pack exits comes after the answer, so a fetch right after a push could
      // be served the cached refs from before it).
      await o.generations.bump(`${claims.tenant}/${claims.repo}`);
      const replicate = (o.replicaZones?.length ?? 0) > 0;
      // A span of the push's trace; its context goes into the outbox rows, so the workflows continue it.
      const { runs, notes, maintenanceDue, recordedEarlier } = await inSpan('git-server post-receive', { 'dotgit.repo': `${claims.tenant}/${claims.repo}` }, () => waitingOutFence(() => recordPush(dbOf(claims.tenantId), {
        tenantId: claims.tenantId,
        tenant: claims.tenant,
        repoId: claims.repoId,
        repo: claims.repo,
        gitDir,
        actor: claims.actor,
        node: o.node?.id,
        traceparent: currentTraceparent(),
        requestId: claims.requestId,
      }, updates, { skipPipelines: skip, refsFingerprint, replicate, journal: postReceiveGuard(claims.tenantId, claims.pushId), reads })), contextFrom(claims.traceparent));
      if (replicate) o.onReplicationQueued?.();
      // The push's request id next to the run ids: how a run is traced back to the request that started it.
      o.log
        .child({ requestId: claims.requestId ?? null, traceId: claims.traceId ?? null })
        .info({ repo: `${claims.tenant}/${claims.repo}`, actor: claims.actor, refs: updates.length, runs: runs.map((r) => r.runId), skip }, 'push recorded');
      if (runs.length > 0) o.onPushRecorded();
      if (maintenanceDue) o.onMaintenanceDue?.({ tenantId: claims.tenantId, tenant: claims.tenant, repoId: claims.repoId, repo: claims.repo, node: o.node?.id });
      const base = o.publicUrl.replace(/\/+$/, '');
      // Runs a reconciliation recorded first (this push outlived a git-server restart) are still this push's.
      const runIds = [...recordedEarlier, ...runs.map((r) => r.runId)];
      const messages = [...notes, ...runIds.map((id) => `dotgit: run ${id} ${base}/api/v1/runs/${encodeURIComponent(id)}`)];
      if (skip) messages.push('dotgit: ci.skip: no pipeline started');
      return { messages };
    },
  };

  // Everything below is user traffic, forwarded by the gateway with a signed identity.
  const git = express.Router();
  git.use(requireIdentity(o.internalSecret));
  git.use(requestLogger(o.log));

  async function authorize(req: Request, service: GitService): Promise<{ repo: RepoRow; gitDir: string }> {
    const owner = assertValidName('owner', req.params.owner);
    const name = assertValidName('repo', req.params.repo);
    const db = await dbOfOwner(owner);
    const repo = await findRepo(db, owner, name);
    const principal = req.principal;
    const need = service === 'git-receive-pack' ? 'write' : 'read';
    if (!repo) {
      if (!principal) throw new AuthenticationError('authentication required');
      throw new NotFoundError(`repository ${owner}/${name} not found`);
    }
    const access = await accessTo(db, principal, repo);
    if (!atLeast(access, need)) {
      // Anonymous callers are asked for credentials (git then retries with them); known ones are refused.
      if (!principal) throw new AuthenticationError('authentication required');
      if (access === 'none') throw new NotFoundError(`repository ${owner}/${name} not found`);
      throw new NotAllowedError(`your token may not ${need === 'write' ? 'push to' : 'read'} ${owner}/${name}`);
    }
    const primaryDir = repoPath(o.reposDir, owner, name);
    // Reads may be served by an up-to-date replica when the primary copy is gone; writes never.
    const gitDir = need === 'read' ? await readableCopy({ db, zones: o.replicaZones ?? [], log: req.log ?? o.log }, repo, primaryDir) : primaryDir;
    return { repo, gitDir };
  }

  function serviceParam(value: unknown): GitService {
    if (value === 'git-upload-pack' || value === 'git-receive-pack') return value;
    throw new InputError('service must be git-upload-pack or git-receive-pack (dumb HTTP is not served)');
  }

  git.get('/:owner/:repo.git/info/refs', route(async (req, res) => {
    const service = serviceParam(req.query.service);
    const { repo, gitDir } = await authorize(req, service);
    // A push to a repository a move fences is refused before it sends its pack (and again under the lock).
    if (service === 'git-receive-pack') await assertWritableHere(dbOf(repo.tenantId), repo.id, `${repo.owner}/${repo.name}`, o.node?.id);
    const env = gitProtocolEnv(req);
    const repoName = `${req.params.owner}/${req.params.repo}`;
    const generation = await o.generations.get(repoName);
    const cacheKey = generation === undefined ? undefined : `${repoName}|${generation}|${service}|${env.GIT_PROTOCOL ?? ''}`;
    const cached = cacheKey ? advertisements.get(cacheKey) : undefined;
    res.setHeader('Content-Type', `application/x-${service}-advertisement`);
    res.setHeader('Cache-Control', 'no-cache');
    if (cached) {
      res.end(cached);
      return;
    }
    const body = await advertiseRefs(gitDir, service, env, service === 'git-receive-pack' ? RECEIVE_PACK_CONFIG : []);
    if (cacheKey) advertisements.set(cacheKey, body);
    res.end(body);
  }));

  git.post('/:owner/:repo.git/git-upload-pack', route(async (req, res) => {
    const { repo, gitDir } = await authorize(req, 'git-upload-pack');
    const env = gitProtocolEnv(req);
    const body = await readRequestBody(req);
    const generation = await o.generations.get(`${repo.owner}/${repo.name}`);
    const key = PackCache.key({ gitDir, refsFingerprint: await fingerprints.get(gitDir, generation), protocol: env.GIT_PROTOCOL ?? '', body });
    // A gateway that reads this pack cache's folder streams a cached answer itself (ADR 0040).
    const handoff = await o.packCache.sharesVolume(req.header(PACK_VOLUME_HEADER));
    await o.packCache.serve(
      key,
      res,
      'application/x-git-upload-pack-result',
      () => startUploadPack(gitDir, env, body),
      () => fetches.acquire(`${repo.owner}/${repo.name}`),
      handoff,
    );
  }));

  git.post('/:owner/:repo.git/git-receive-pack', route(async (req, res) => {
    const { repo, gitDir } = await authorize(req, 'git-receive-pack');
    const env = gitProtocolEnv(req);
    const declared = Number(req.header('content-length') ?? 0);
    if (declared > o.limits.maxPushBytes + 1024 * 1024) {
      throw new PayloadTooLargeError(`this push is ${declared} bytes; at most ${o.limits.maxPushBytes} are accepted`);
    }
    const claims: HookClaims = {
      tenantId: repo.tenantId,
      tenant: repo.owner,
      repoId: repo.id,
      repo: repo.name,
      actor: req.principal?.username ?? 'anonymous',
      pushId: newPushId(),
      requestId: req.requestId,
      traceId: traceIdOf(req.header('traceparent')),
      traceparent: currentTraceparent(),
    };
    const startedAt = Date.now();
    const release = await writeLock(`${repo.owner}/${repo.name}`, req.log ?? o.log);
    try {
      // Under the lock: a move's barrier waits for this push, or this push sees the move's fence.
      await assertWritableHere(dbOf(repo.tenantId), repo.id, `${repo.owner}/${repo.name}`, o.node?.id);
      await runService(req, res, 'git-receive-pack', gitDir, env, ['-c', `core.hooksPath=${HOOKS_DIR}`, ...RECEIVE_PACK_CONFIG, '-c', `receive.maxInputSize=${o.limits.maxPushBytes}`], serveHooks(claims)).catch(async (err: unknown) => {
        // git gave up without an answer. While our own database is away (a failover) that is our
        // unavailability, not the client's bad input: 503 + Retry-After, so the client pushes again.
        // A hook refused by a shard move's fence: the push was not taken; it goes through once the move switched.
        if (!(err instanceof InputError)) throw err;
        const trouble = troubledPushes.get(claims.pushId);
        if (trouble === 'fenced') {
          throw new UnavailableError(`the push could not complete while ${repo.owner}'s shard moves to another database; retry shortly`, SHARD_FENCED_RETRY_AFTER_SECONDS, { cause: err });
        }
        // Its own hook saw the database away, another push's did while this one ran, or it does not answer now.
        if (trouble === 'unavailable' || databaseTroubleAt >= startedAt || !(await databaseAnswers(dbOf(repo.tenantId)))) {
          throw new UnavailableError('the push could not complete while the database was unavailable; retry shortly', 2, { cause: err });
        }
        (req.log ?? o.log).warn({ err }, 'push refused: git gave up without an answer');
        throw err;
      });
    } finally {
      troubledPushes.delete(claims.pushId);
      release();
      // Refs may have changed: cached advertisements of this repository are stale from now on.
      await o.generations.bump(`${repo.owner}/${repo.name}`);
    }
  }));

  if (o.lfsStore) git.use(createLfsRouter({ db: o.db, dbOf, dbOfOwner, log: o.log, store: o.lfsStore, publicUrl: o.publicUrl, internalSecret: o.internalSecret }));
  app.use(git);
  app.use((_req, _res, next) => next(new NotFoundError('no such git endpoint')));
  app.use(errorMiddleware(o.log));
  return app;
}

/** How long a hook waits for the git-server's answer before its gate gives up (curl's --max-time was the same). */
const HOOK_DEADLINE_MS = 60_000;

/** Whether the database answers a trivial query within 2 s (used to tell our failover from a client's bad push). */
async function databaseAnswers(db: Db): Promise<boolean> {
  const probe = pingDatabase(db).then(
    () => true,
    () => false,
  );
  const timeout = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 2000).unref());
  return Promise.race([probe, timeout]);
}
