import { condition, continueAsNew, getExternalWorkflowHandle, patched, setHandler, workflowInfo } from '@temporalio/workflow';
import { acquireGroupSignal, cancelJobSignal, groupMemberId, groupPositionSignal, jobGroupGrantedSignal, jobGroupPositionSignal, lockGrantedSignal, releaseLockSignal, type GroupRequest } from '../core/concurrency-types';

/** A queued member: a run (`id` is its run id) or, for a job-level group, one job of a run (ADR 0037). */
interface Member {
  id: string;
  requestedAt: number;
  /** Job-level members only: the run's workflow id and the job. */
  run?: string;
  job?: string;
}

export interface ConcurrencyGroupState {
  /** Runs (and jobs) waiting, in arrival order. */
  queue: Member[];
}

/** An idle group ends after this long; the next run starts it again (signal-with-start). */
const IDLE_TIMEOUT = '10 minutes';
/** How often the holder is checked for being alive, so a terminated run cannot hold the group forever. */
const HOLDER_CHECK = '10 minutes';
/** Runs served before the history is rolled over. */
const MAX_SERVED_PER_RUN = 200;

/**
 * A pipeline concurrency group (issue 17 item 4; ADR 0035): the environment lock's mechanism
 * (workflows/environment-lock.ts: a FIFO granted in arrival order, the holder releases however it
 * ends, a vanished holder is found by a failed signal) with what groups add: every waiting run is
 * told how many runs are ahead of it, and a run that asks for `cancel-in-progress` cancels the
 * holder and every run queued before it (GitHub's rule: the newest wins), then waits for the
 * holder's release so two runs of a group never overlap.
 */
export async function concurrencyGroup(state: ConcurrencyGroupState): Promise<void> {
  const queue = [...state.queue];
  let holder: string | undefined;
  /** The holder as queued (a job-level holder is told through its run). */
  let held: Member | undefined;
  /** Older members a newer one cancelled: told once, outside the handler (signals are commands). */
  const toCancel: Member[] = [];
  let positionsDirty = queue.length > 0;
  setHandler(acquireGroupSignal, (req: GroupRequest) => {
    const id = groupMemberId(req.runId, req.job);
    if (id === holder || queue.some((q) => q.id === id)) return;
    if (req.cancelInProgress) {
      // Only the members that arrived before this one: a slower signal of an older run must not cancel a newer one.
      if (holder !== undefined && held) toCancel.push(held);
      for (let i = queue.length - 1; i >= 0; i--) {
        if (queue[i].requestedAt <= req.requestedAt) toCancel.push(...queue.splice(i, 1));
      }
    }
    const after = queue.findIndex((q) => q.requestedAt > req.requestedAt || (q.requestedAt === req.requestedAt && q.id > id));
    queue.splice(after < 0 ? queue.length : after, 0, req.job === undefined ? { id, requestedAt: req.requestedAt } : { id, requestedAt: req.requestedAt, run: req.runId, job: req.job });
    positionsDirty = true;
  });
  setHandler(releaseLockSignal, (runId) => {
    if (runId === holder) holder = undefined;
    const i = queue.findIndex((q) => q.id === runId);
    if (i >= 0) queue.splice(i, 1);
    positionsDirty = true;
  });

  /** Cancels the runs (or runs' jobs) a newer one superseded (they release the group as they end). */
  const cancelSuperseded = async () => {
    while (toCancel.length > 0) {
      const m = toCancel.shift()!;
      if (m.run !== undefined && m.job !== undefined && patched('group-job-members')) await getExternalWorkflowHandle(m.run).signal(cancelJobSignal, m.job).catch(() => undefined);
      else await getExternalWorkflowHandle(m.id).cancel().catch(() => undefined);
    }
  };
  /** Signals a member: a run directly, a job through its run. */
  const grant = (m: Member) =>
    m.run !== undefined && m.job !== undefined && patched('group-job-members') ? getExternalWorkflowHandle(m.run).signal(jobGroupGrantedSignal, m.job) : getExternalWorkflowHandle(m.id).signal(lockGrantedSignal);
  const position = (m: Member, n: number) =>
    m.run !== undefined && m.job !== undefined && patched('group-job-members') ? getExternalWorkflowHandle(m.run).signal(jobGroupPositionSignal, m.job, n) : getExternalWorkflowHandle(m.id).signal(groupPositionSignal, n);
  /** Does what signals asked, and tells every waiting run how many are ahead of it (the holder counts); runs that are gone are dropped. */
  const tell = async () => {
    await cancelSuperseded();
    while (positionsDirty) {
      positionsDirty = false;
      for (const [i, q] of [...queue].entries()) {
        await position(q, i + 1).catch(() => {
          const gone = queue.findIndex((x) => x.id === q.id);
          if (gone >= 0) queue.splice(gone, 1);
          positionsDirty = true;
        });
      }
    }
  };
  const busy = () => toCancel.length > 0 || positionsDirty;

  for (let served = 0; ; served++) {
    if (!(await condition(() => queue.length > 0 || toCancel.length > 0, IDLE_TIMEOUT)) && queue.length === 0) return;
    await cancelSuperseded();
    if (queue.length === 0) continue;
    if (served >= MAX_SERVED_PER_RUN || workflowInfo().continueAsNewSuggested) await continueAsNew<typeof concurrencyGroup>({ queue });
    held = queue.shift()!;
    holder = held.id;
    positionsDirty = true;
    while (holder !== undefined) {
      try {
        // Re-sent on every check: the run ignores repeats, and a failure means it is gone.
        await grant(held);
      } catch {
        holder = undefined;
        break;
      }
      // A cancel or a new waiter while the holder runs: act on it, then keep waiting for the release.
      do await tell();
      while (await condition(() => holder === undefined || busy(), HOLDER_CHECK) && holder !== undefined);
    }
  }
}
