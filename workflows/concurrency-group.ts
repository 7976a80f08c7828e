import { condition, continueAsNew, getExternalWorkflowHandle, setHandler, workflowInfo } from '@temporalio/workflow';
import { acquireGroupSignal, groupPositionSignal, lockGrantedSignal, releaseLockSignal, type GroupRequest } from '../core/concurrency-types';

export interface ConcurrencyGroupState {
  /** Runs waiting, in arrival order. */
  queue: { id: string; requestedAt: number }[];
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
  /** Older runs a newer one cancelled: told once, outside the handler (signals are commands). */
  const toCancel: string[] = [];
  let positionsDirty = queue.length > 0;
  setHandler(acquireGroupSignal, (req: GroupRequest) => {
    if (req.runId === holder || queue.some((q) => q.id === req.runId)) return;
    if (req.cancelInProgress) {
      // Only the runs that arrived before this one: a slower signal of an older run must not cancel a newer one.
      if (holder !== undefined) toCancel.push(holder);
      for (let i = queue.length - 1; i >= 0; i--) {
        if (queue[i].requestedAt <= req.requestedAt) toCancel.push(...queue.splice(i, 1).map((q) => q.id));
      }
    }
    const after = queue.findIndex((q) => q.requestedAt > req.requestedAt || (q.requestedAt === req.requestedAt && q.id > req.runId));
    queue.splice(after < 0 ? queue.length : after, 0, { id: req.runId, requestedAt: req.requestedAt });
    positionsDirty = true;
  });
  setHandler(releaseLockSignal, (runId) => {
    if (runId === holder) holder = undefined;
    const i = queue.findIndex((q) => q.id === runId);
    if (i >= 0) queue.splice(i, 1);
    positionsDirty = true;
  });

  /** Cancels the runs a newer one superseded (they release the group as they end). */
  const cancelSuperseded = async () => {
    while (toCancel.length > 0) {
      const id = toCancel.shift()!;
      await getExternalWorkflowHandle(id).cancel().catch(() => undefined);
    }
  };
  /** Does what signals asked, and tells every waiting run how many are ahead of it (the holder counts); runs that are gone are dropped. */
  const tell = async () => {
    await cancelSuperseded();
    while (positionsDirty) {
      positionsDirty = false;
      for (const [i, q] of [...queue].entries()) {
        await getExternalWorkflowHandle(q.id).signal(groupPositionSignal, i + 1).catch(() => {
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
    holder = queue.shift()!.id;
    positionsDirty = true;
    while (holder !== undefined) {
      try {
        // Re-sent on every check: the run ignores repeats, and a failure means it is gone.
        await getExternalWorkflowHandle(holder).signal(lockGrantedSignal);
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
