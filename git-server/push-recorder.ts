import { randomBytes } from 'node:crypto';
import type { Db, DbClient } from '../core/db';
import { inTransaction } from '../core/db';
import { commitAndFile, FileTooLargeError, runGit, type CommitFile } from '../core/git';
import { MAX_PIPELINE_FILE_BYTES, PIPELINE_PATH, PipelineSpecError, parsePipeline, triggersOnPush } from '../core/pipeline-spec';
import { pipelineWorkflowId, type PipelineInput, type RepoTarget } from '../core/run-types';
import { appendAudit } from '../core/stores/audit-store';
import { enqueuePipelineStart, enqueuePushWebhookDispatch, enqueueReplication } from '../core/stores/outbox-store';
import { countPush } from '../core/stores/repos-store';
import { insertQueuedRun } from '../core/stores/runs-store';
import { recordRepoSchedules } from '../core/stores/schedules-store';
import { headBranch } from './default-branch';
import { cronsIn } from './schedule-sync';
import { pushDispatchWorkflowId, type WebhookDispatchInput } from '../core/webhook-payloads';
import { MAINTENANCE_EVERY_PUSHES } from '../temporal-config/schedules';

export interface RefUpdate {
  oldSha: string;
  newSha: string;
  ref: string;
}

/** How the push journal (push-journal.ts) takes part in recording a push. */
export interface JournalGuard {
  /** Locks the push's journal rows; answers the updates not yet recorded and the runs of those that were. */
  claim(c: DbClient, updates: RefUpdate[]): Promise<{ todo: RefUpdate[]; recordedRuns: string[] }>;
  /** Marks the recorded updates done with their runs. */
  done(c: DbClient, updates: RefUpdate[], runs: PipelineInput[]): Promise<void>;
}

export interface PushContext {
  tenantId: number;
  tenant: string;
  repoId: number;
  repo: string;
  gitDir: string;
  actor: string;
  /** The storage node recording the push (it holds the repository): named in the replication target. */
  node?: string;
  /** The push's trace context (when tracing), stored in its outbox rows for the workflows to continue. */
  traceparent?: string;
  /** The push's request id (the gateway's), for its audit entry. */
  requestId?: string;
}

const SHA = /^[0-9a-f]{40}$|^[0-9a-f]{64}$/;
const ZERO = /^0+$/;
/** Longer refs start no run: Temporal's search attributes (DotgitRef) hold at most 2 KiB, and no real branch is this long. */
export const MAX_REF_LENGTH = 255;
/** `push` webhook events per push at most (one per ref, as GitHub sends them); a mass tag push sends the first ones. */
const MAX_PUSH_EVENTS = 100;

/** What an update did to its ref, for the audit log: `force` when the old commit is not an ancestor of the new one. */
export type RefUpdateKind = 'create' | 'update' | 'force' | 'delete';

/** One update as a key: the same ref moved from the same commit to the same commit. */
export function updateKey(u: RefUpdate): string {
  return `${u.ref} ${u.oldSha} ${u.newSha}`;
}

async function updateKind(gitDir: string, u: RefUpdate, fastForwards: ReadonlySet<string>): Promise<RefUpdateKind> {
  if (ZERO.test(u.oldSha)) return 'create';
  if (ZERO.test(u.newSha)) return 'delete';
  if (!SHA.test(u.oldSha) || !SHA.test(u.newSha)) return 'update';
  // The pre-receive gate found nothing of the old tip missing from the new one: a fast-forward, no git needed.
  if (fastForwards.has(updateKey(u))) return 'update';
  // Exit 1: not an ancestor (history rewritten); tags peel to their commits. Anything else (an
  // object that is not a commit) is not a rewrite of history.
  const r = await runGit(['--git-dir', gitDir, 'merge-base', '--is-ancestor', u.oldSha, u.newSha]);
  return r.code === 1 ? 'force' : 'update';
}

/** Pipeline files of a push read at once, ahead of the one being looked at. */
const READ_AHEAD = 4;

/** The push's updates with their kinds, a few git processes at a time. */
async function classify(gitDir: string, updates: RefUpdate[], fastForwards: ReadonlySet<string>): Promise<Map<string, RefUpdateKind>> {
  const kinds = new Map<string, RefUpdateKind>();
  for (let i = 0; i < updates.length; i += 4) {
    const batch = updates.slice(i, i + 4);
    const found = await Promise.all(batch.map((u) => updateKind(gitDir, u, fastForwards)));
    batch.forEach((u, j) => kinds.set(u.ref, found[j]));
  }
  return kinds;
}

/**
 * What recording a push reads from git, started at once so the reads overlap each other and the
 * caller's own (post-receive reads the refs meanwhile): the updates' kinds for the audit entry and
 * the pipeline file at each pushed commit, a few ahead of the one being looked at.
 */
export interface PushReads {
  kinds: Promise<Map<string, RefUpdateKind>>;
  /** The updates that may start a run, in push order. */
  candidates: RefUpdate[];
  /** What the push is told about updates that start no run. */
  notes: string[];
  /** The commit a pushed object peels to and its pipeline file, read once per object. */
  fileAt(sha: string): Promise<CommitFile | undefined>;
  /** Starts reading the file of candidate `i`, unless there is none. */
  readAhead(i: number): void;
}

export function startPushReads(
  gitDir: string,
  updates: RefUpdate[],
  o: {
    skipPipelines?: boolean;
    /** Updates (updateKey) the pre-receive gate found fast-forward. Default: none known, git is asked. */
    fastForwards?: ReadonlySet<string>;
  } = {},
): PushReads {
  const read = new Map<string, Promise<CommitFile | undefined>>();
  const fileAt = (sha: string) => {
    if (!read.has(sha)) read.set(sha, commitAndFile(gitDir, sha, PIPELINE_PATH, MAX_PIPELINE_FILE_BYTES));
    return read.get(sha)!;
  };
  // Awaited after the pipeline files; a failure surfaces there.
  const kinds = classify(gitDir, updates, o.fastForwards ?? new Set());
  kinds.catch(() => undefined);
  const notes: string[] = [];
  const candidates: RefUpdate[] = [];
  for (const u of o.skipPipelines ? [] : updates) {
    if (typeof u.ref !== 'string' || typeof u.newSha !== 'string') continue;
    if (!SHA.test(u.newSha) || ZERO.test(u.newSha)) continue; // deletions start nothing
    if (!/^refs\/(heads|tags)\//.test(u.ref)) continue;
    if (u.ref.length > MAX_REF_LENGTH) {
      notes.push(`dotgit: no pipeline for ${u.ref.slice(0, 60)}…: ref names longer than ${MAX_REF_LENGTH} characters start no runs`);
      continue;
    }
    candidates.push(u);
  }
  // A push of many tags must not start all their reads at once.
  const readAhead = (i: number) => {
    if (i < candidates.length) fileAt(candidates[i].newSha).catch(() => undefined);
  };
  for (let i = 0; i < READ_AHEAD; i++) readAhead(i);
  return { kinds, candidates, notes, fileAt, readAhead };
}

/** The `push` webhook events of a push: every branch and tag created, updated or deleted. */
function pushEvents(ctx: PushContext, updates: RefUpdate[]): WebhookDispatchInput['events'] {
  return updates
    .filter((u) => typeof u.ref === 'string' && /^refs\/(heads|tags)\/[^-]/.test(u.ref) && u.ref.length <= MAX_REF_LENGTH)
    .filter((u) => SHA.test(u.oldSha) && SHA.test(u.newSha) && !(ZERO.test(u.oldSha) && ZERO.test(u.newSha)))
    .slice(0, MAX_PUSH_EVENTS)
    .map((u) => ({ event: 'push' as const, ref: u.ref, before: u.oldSha, after: u.newSha, pusher: ctx.actor }));
}

/**
 * Turns the ref updates of one push into runs: one run per updated branch or tag whose commit has a
 * pipeline file that asks for this ref. Run rows and outbox rows are written in one transaction,
 * so either the push has all its pipelines queued or none (and the hook says so).
 */
export async function recordPush(
  db: Db,
  ctx: PushContext,
  updates: RefUpdate[],
  options: {
    skipPipelines?: boolean;
    /** The refs fingerprint after this push (core/replica-sync fingerprintOf): what an up-to-date replica holds. */
    refsFingerprint?: string;
    /** Queue the push for replication (replica zones are configured). */
    replicate?: boolean;
    /** The push journal's guard: which updates are still to record, and marking them done (same transaction). */
    journal?: JournalGuard;
    /** The push's git reads, when the caller started them early (startPushReads with these updates and skipPipelines). */
    reads?: PushReads;
  } = {},
): Promise<{ runs: PipelineInput[]; notes: string[]; maintenanceDue: boolean; recordedEarlier: string[] }> {
  let planned: PipelineInput[] = [];
  let maintenanceDue = false;
  const reads = options.reads ?? startPushReads(ctx.gitDir, updates, { skipPipelines: options.skipPipelines });
  const { candidates, fileAt: atCommit, readAhead } = reads;
  const notes = [...reads.notes];
  // HEAD is read now, not with the other reads: the caller may have just made the pushed branch the default.
  const headRead = headBranch(ctx.gitDir);
  headRead.catch(() => undefined);
  for (const [i, u] of candidates.entries()) {
    readAhead(i + READ_AHEAD);
    // A tag may point at a tag object; runs are of commits.
    const found = await atCommit(u.newSha);
    if (!found) continue;
    const { commit } = found;
    try {
      if (found.tooLarge) throw found.tooLarge;
      if (found.text === undefined) continue;
      if (!triggersOnPush(parsePipeline(found.text), u.ref)) continue;
    } catch (err) {
      // An invalid or oversized file still gets a run, so the author sees the problem on the run.
      if (!(err instanceof PipelineSpecError || err instanceof FileTooLargeError)) throw err;
    }
    planned.push({
      runId: pipelineWorkflowId(ctx.tenant, ctx.repo, randomBytes(8).toString('hex')),
      tenantId: ctx.tenantId,
      tenant: ctx.tenant,
      repoId: ctx.repoId,
      repo: ctx.repo,
      ref: u.ref,
      commit,
      event: 'push',
      actor: ctx.actor,
    });
  }
  // Issue 17 item 6: a push to the default branch records its file's schedules for the relay to sync.
  const head = await headRead;
  const toDefault = updates.find((u) => head !== undefined && u.ref === `refs/heads/${head}` && SHA.test(u.newSha) && !ZERO.test(u.newSha));
  const defaultFile = toDefault ? await atCommit(toDefault.newSha) : undefined;
  const crons = toDefault ? (defaultFile?.tooLarge ? undefined : cronsIn(defaultFile?.text)) : undefined;
  let recordedEarlier: string[] = [];
  let mine = updates;
  const kinds = await reads.kinds;
  await inTransaction(db, async (c) => {
    // Another path (post-receive or reconciliation) may have recorded some of these updates first.
    if (options.journal) {
      const claim = await options.journal.claim(c, updates);
      recordedEarlier = claim.recordedRuns;
      const todo = new Set(claim.todo.map((u) => u.ref));
      mine = updates.filter((u) => todo.has(u.ref));
      planned = planned.filter((p) => todo.has(p.ref));
      if (mine.length === 0) return;
    }
    for (const run of planned) {
      await insertQueuedRun(c, run);
      await enqueuePipelineStart(c, run.tenantId, run.runId, run, ctx.traceparent ?? null);
    }
    // The push's webhook events go out through the relay, like pipelines; only when a hook wants them.
    const events = pushEvents(ctx, mine);
    if (events.length > 0) {
      const dispatch: WebhookDispatchInput = { tenantId: ctx.tenantId, repoId: ctx.repoId, events, ...(ctx.node ? { node: ctx.node } : {}) };
      await enqueuePushWebhookDispatch(c, ctx.tenantId, ctx.repoId, pushDispatchWorkflowId(ctx.tenant, ctx.repo, randomBytes(8).toString('hex')), dispatch);
    }
    if (toDefault && crons && mine.includes(toDefault)) {
      await recordRepoSchedules(c, { tenantId: ctx.tenantId, repoId: ctx.repoId, owner: ctx.tenant, repo: ctx.repo, ref: toDefault.ref, commit: toDefault.newSha, crons });
    }
    const counted = await countPush(c, ctx.repoId, options.refsFingerprint);
    maintenanceDue = counted.pushesSinceMaintenance >= MAINTENANCE_EVERY_PUSHES;
    // Replica nodes (ADR 0014) are the repository's own: a push to one that has any is replicated
    // even where no zone is configured.
    if (options.replicate || (!!options.refsFingerprint && counted.hasReplicaNodes)) {
      const target: RepoTarget = { tenantId: ctx.tenantId, tenant: ctx.tenant, repoId: ctx.repoId, repo: ctx.repo, ...(ctx.node ? { node: ctx.node } : {}) };
      await enqueueReplication(c, ctx.tenantId, ctx.repoId, target);
    }
    await options.journal?.done(c, mine, planned);
    // Last, so the audit chain's lock is held only while this transaction commits.
    const audited = mine.map((u) => ({ ...u, kind: kinds.get(u.ref) ?? 'update' }));
    await appendAudit(c, {
      tenantId: ctx.tenantId,
      actor: ctx.actor,
      action: 'repo.push',
      target: `${ctx.tenant}/${ctx.repo}`,
      detail: {
        updates: audited,
        runs: planned.map((p) => p.runId),
        forced: audited.filter((u) => u.kind === 'force').map((u) => u.ref),
        deleted: audited.filter((u) => u.kind === 'delete').map((u) => u.ref),
      },
      requestId: ctx.requestId,
    });
  });
  return { runs: planned, notes, maintenanceDue, recordedEarlier };
}
