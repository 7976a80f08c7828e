import { condition, continueAsNew, getExternalWorkflowHandle, setHandler, workflowInfo } from '@temporalio/workflow';
import { acquireLockSignal, lockGrantedSignal, releaseLockSignal } from '../core/deploy-types';

export interface EnvironmentLockState {
  /** Deploys waiting, ordered by when they were requested. */
  queue: { id: string; requestedAt: number }[];
}

/** An idle lock ends after this long; the next deploy starts it again (signal-with-start). */
const IDLE_TIMEOUT = '10 minutes';
/** How often the holder is checked for being alive, so a terminated deploy cannot hold the lock forever. */
const HOLDER_CHECK = '10 minutes';
/** Deploys served before the history is rolled over. */
const MAX_SERVED_PER_RUN = 200;

/**
 * The "one deploy per environment at a time" mutex: deploys queue here by signal and are granted
 * the environment in the order they were requested; the holder signals release when it ends (whatever
 * way it ends). A holder that vanished without releasing (terminated) is detected when a signal to
 * it fails.
 */
export async function environmentLock(state: EnvironmentLockState): Promise<void> {
  const queue = [...state.queue];
  let holder: string | undefined;
  setHandler(acquireLockSignal, (deployId, requestedAt) => {
    if (deployId === holder || queue.some((q) => q.id === deployId)) return;
    // Deploys requested together may signal in any order (their activities race): keep request order.
    const at = requestedAt ?? 0;
    const after = queue.findIndex((q) => q.requestedAt > at || (q.requestedAt === at && q.id > deployId));
    queue.splice(after < 0 ? queue.length : after, 0, { id: deployId, requestedAt: at });
  });
  setHandler(releaseLockSignal, (deployId) => {
    if (deployId === holder) holder = undefined;
    const i = queue.findIndex((q) => q.id === deployId);
    if (i >= 0) queue.splice(i, 1);
  });

  for (let served = 0; ; served++) {
    if (!(await condition(() => queue.length > 0, IDLE_TIMEOUT)) && queue.length === 0) return;
    if (served >= MAX_SERVED_PER_RUN || workflowInfo().continueAsNewSuggested) await continueAsNew<typeof environmentLock>({ queue });
    holder = queue.shift()!.id;
    while (holder !== undefined) {
      try {
        // Re-sent on every check: the deploy ignores repeats, and a failure means it is gone.
        await getExternalWorkflowHandle(holder).signal(lockGrantedSignal);
      } catch {
        holder = undefined; // the deploy ended (or never existed): the next one goes
        break;
      }
      await condition(() => holder === undefined, HOLDER_CHECK);
    }
  }
}
