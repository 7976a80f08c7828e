import os from 'node:os';
import type { Db, DbClient } from '../core/db';
import { repoPath, runGit } from '../core/git';
import type { Logger } from '../core/logger';
import { withLogContext } from '../core/log-context';
import { fingerprintOf, readRefs } from '../core/replica-sync';
import type { PipelineInput } from '../core/run-types';
import type { HookClaims } from './hook-support';
import { recordPush, type JournalGuard, type RefUpdate } from './push-recorder';
import {
  abortJournalRows,
  abortPreparedUpdates,
  insertPreparedUpdates,
  laterUpdateFrom,
  listOpenJournalRows,
  listOpenPushes,
  lockJournalRows,
  markJournalDone,
  pruneFinishedJournal,
  type OpenJournalRow,
  type OpenPush,
} from '../core/stores/push-journal-store';

/**
 * The push journal (docs/decisions/0011-push-durability.md): git's reference-transaction hook
 * journals a push's branch and tag updates in Postgres in its `prepared` state, before the refs
 * become visible. Recording the push (runs, outbox rows) marks the rows `done` in the same
 * transaction, whether the post-receive hook does it or, after a crash, the reconciliation here.
 */

/** The push's identity, as its hooks' channel knows it. */
export type JournalClaims = Pick<HookClaims, 'tenantId' | 'repoId' | 'actor' | 'pushId'>;

const ZERO = /^0+$/;
/** Only branches and tags start pipelines or webhooks; other refs (HEAD, notes, …) are not journaled. */
export const JOURNALED_REF = /^refs\/(heads|tags)\//;
/** Finished rows are kept this long (for inspection), then pruned by the periodic pass. */
const KEEP_FINISHED_DAYS = 7;

/** This git-server's name in the journal: host and port, stable across its restarts. */
export function instanceName(port: number): string {
  return `${os.hostname()}:${port}`;
}

/** `prepared`: the updates about to be made. Written before git makes them visible. */
export async function journalPrepared(db: Db, claims: JournalClaims, updates: RefUpdate[], o: { instance?: string; pushOptions?: string[] } = {}): Promise<void> {
  const mine = updates.filter((u) => JOURNALED_REF.test(u.ref));
  if (mine.length === 0) return;
  await insertPreparedUpdates(db, {
    tenantId: claims.tenantId,
    repoId: claims.repoId,
    pushId: claims.pushId,
    actor: claims.actor,
    pushOptions: o.pushOptions ?? [],
    instance: o.instance ?? 'unknown',
    updates: mine,
  });
}

/**
 * `aborted`: git gave up on prepared updates (a ref lock lost, a gate's answer lost in a failover).
 * Marked at once, not left to reconciliation: a later push of the same change would otherwise make
 * the ref look as if this one had landed.
 */
export async function journalAborted(db: Db, claims: Pick<JournalClaims, 'tenantId' | 'pushId'>, updates: RefUpdate[]): Promise<void> {
  const refs = updates.filter((u) => JOURNALED_REF.test(u.ref)).map((u) => u.ref);
  if (refs.length === 0) return;
  await abortPreparedUpdates(db, claims.tenantId, claims.pushId, refs);
}

async function markDone(c: DbClient, tenantId: number, pushId: string, updates: RefUpdate[], runs: PipelineInput[]): Promise<void> {
  for (const u of updates.filter((x) => JOURNALED_REF.test(x.ref))) {
    await markJournalDone(
      c,
      tenantId,
      pushId,
      u.ref,
      runs.filter((r) => r.ref === u.ref).map((r) => r.runId),
    );
  }
}

/**
 * The post-receive hook's guard: records every update git reports, except those a reconciliation
 * already recorded (an `aborted` row counts as not recorded: git's post-receive is the proof the ref moved).
 */
export function postReceiveGuard(tenantId: number, pushId: string): JournalGuard {
  return {
    async claim(c, updates) {
      const rows = await lockJournalRows(c, tenantId, pushId, updates.map((u) => u.ref));
      const done = new Map(rows.filter((r) => r.status === 'done').map((r) => [r.ref, r.run_ids]));
      return { todo: updates.filter((u) => !done.has(u.ref)), recordedRuns: [...done.values()].flat() };
    },
    done: (c, updates, runs) => markDone(c, tenantId, pushId, updates, runs),
  };
}

export interface ReconcilerOptions {
  db: Db;
  reposDir: string;
  log: Logger;
  /** Queue recovered pushes for replication (replica zones are configured). */
  replicate: boolean;
  /** Called when a pass created runs (kicks the outbox relay). */
  onRunsCreated?: () => void;
  onReplicationQueued?: () => void;
  /**
   * This storage node (ADR 0014): only pushes to repositories placed on it (or not placed yet) are
   * its to judge; another node's repository is not on this disk, so its refs would look unmoved.
   */
  nodeId?: string;
}

type OpenRow = OpenJournalRow;

/**
 * Finds journaled pushes that were never recorded (the git-server died between the ref update
 * and the post-receive transaction) and records those whose refs moved, exactly once; rows whose
 * refs never moved are marked `aborted`.
 */
export class PushReconciler {
  constructor(private readonly o: ReconcilerOptions) {}

  /**
   * One pass. Rows younger than `graceMs` are left alone (their push may be under way on another
   * instance), except `ownRowsBefore`: rows this instance wrote before that database time, whose
   * process is gone.
   */
  async reconcile(scope: { graceMs: number; repoId?: number; ownRowsBefore?: { instance: string; before: Date } }): Promise<{ recovered: number; dropped: number }> {
    const { db } = this.o;
    const open = await listOpenPushes(db, {
      graceMs: scope.graceMs,
      instance: scope.ownRowsBefore?.instance ?? null,
      before: scope.ownRowsBefore?.before ?? null,
      repoId: scope.repoId ?? null,
      nodeId: this.o.nodeId ?? null,
    });
    let recovered = 0;
    let dropped = 0;
    for (const push of open) {
      try {
        // The push's lines (and its recording's) name its repository, as the push's own did (issue 14 item 5).
        const r = await withLogContext({ tenant: push.tenant, repo: `${push.tenant}/${push.repo}` }, () => this.reconcilePush(push));
        recovered += r.recovered;
        dropped += r.dropped;
      } catch (err) {
        this.o.log.warn({ err, repo: `${push.tenant}/${push.repo}`, pushId: push.push_id }, 'could not reconcile a journaled push; next pass retries');
      }
    }
    if (recovered > 0) this.o.onRunsCreated?.();
    return { recovered, dropped };
  }

  private async reconcilePush(push: OpenPush): Promise<{ recovered: number; dropped: number }> {
    const { db } = this.o;
    const tenantId = Number(push.tenant_id);
    const repoId = Number(push.repo_id);
    const rows = await listOpenJournalRows(db, tenantId, push.push_id);
    if (rows.length === 0) return { recovered: 0, dropped: 0 };
    const gitDir = repoPath(this.o.reposDir, push.tenant, push.repo);
    const applied: RefUpdate[] = [];
    const notApplied: string[] = [];
    for (const row of rows) {
      const update = { ref: row.ref, oldSha: row.old_sha, newSha: row.new_sha };
      if (row.status === 'committed' || (await this.landed(gitDir, repoId, row))) applied.push(update);
      else notApplied.push(row.ref);
    }
    let claimed = 0;
    let aborted = 0;
    const guard: JournalGuard = {
      claim: async (c) => {
        // Under the row locks: only rows nobody finished meanwhile.
        const locked = await lockJournalRows(c, tenantId, push.push_id, rows.map((r) => r.ref));
        const open = new Set(locked.filter((r) => r.status === 'prepared' || r.status === 'committed').map((r) => r.ref));
        const drop = notApplied.filter((ref) => open.has(ref));
        if (drop.length > 0) {
          aborted = await abortJournalRows(c, tenantId, push.push_id, drop);
        }
        const todo = applied.filter((u) => open.has(u.ref));
        claimed = todo.length;
        return { todo, recordedRuns: [] };
      },
      done: (c, updates, runs) => markDone(c, tenantId, push.push_id, updates, runs),
    };
    const options = rows[0].push_options ?? [];
    // One transaction records the updates that landed and drops those that did not (the guard).
    const { runs } = await recordPush(
      db,
      { tenantId, tenant: push.tenant, repoId, repo: push.repo, gitDir, actor: rows[0].actor, node: this.o.nodeId },
      applied,
      {
        skipPipelines: options.includes('ci.skip'),
        refsFingerprint: applied.length > 0 ? fingerprintOf(await readRefs(gitDir)) : undefined,
        replicate: this.o.replicate && applied.length > 0,
        journal: guard,
      },
    );
    if (claimed > 0) {
      this.o.log.info({ repo: `${push.tenant}/${push.repo}`, pushId: push.push_id, refs: claimed, runs: runs.map((r) => r.runId) }, 'journaled push recovered');
      if (this.o.replicate) this.o.onReplicationQueued?.();
    }
    if (aborted > 0) this.o.log.info({ repo: `${push.tenant}/${push.repo}`, pushId: push.push_id, refs: aborted }, 'journaled updates that never landed dropped');
    return { recovered: claimed > 0 ? 1 : 0, dropped: aborted };
  }

  /**
   * Whether a prepared update landed: the ref holds its new value now, or a later journaled update
   * of the same ref started from that value (a later push moved it on).
   */
  private async landed(gitDir: string, repoId: number, row: OpenRow): Promise<boolean> {
    const now = await runGit(['--git-dir', gitDir, 'rev-parse', '--verify', '--quiet', '--end-of-options', row.ref]);
    const current = now.code === 0 ? now.stdout.toString().trim() : undefined;
    if (ZERO.test(row.new_sha) ? current === undefined : current === row.new_sha) return true;
    return laterUpdateFrom(this.o.db, repoId, row.ref, row.id, row.new_sha);
  }

  /** Drops finished rows past their keeping time. */
  async prune(): Promise<number> {
    return pruneFinishedJournal(this.o.db, KEEP_FINISHED_DAYS);
  }
}
