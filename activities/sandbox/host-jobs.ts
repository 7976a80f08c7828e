import type { ActivitySlotInfo, CustomSlotSupplier, SlotPermit } from '@temporalio/worker';

interface JobEntry {
  /** Steps of the job running here now, and how many of them came from the shared queue (first steps). */
  running: number;
  runningShared: number;
  lastSeen: number;
}

/**
 * The jobs in progress on this sandbox host, by workspace: a job counts from its first step until
 * its clean-up. A draining worker serves its host queue until there are none, and the shared
 * queue's slots (`jobSlots`) take new jobs only while there is room for them.
 */
export class HostJobs {
  private readonly jobs = new Map<string, JobEntry>();
  private readonly listeners = new Set<() => void>();

  /**
   * @param idleMs a job with no step here for this long is forgotten: its workflow went elsewhere
   *   or ended without a clean-up (a job's steps follow each other within seconds; a `retry:` waits
   *   at most a minute, a pinned step 30 s for its slot).
   */
  constructor(
    private readonly idleMs = 15 * 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  stepStarted(ws: string, shared: boolean): void {
    const e = this.jobs.get(ws) ?? { running: 0, runningShared: 0, lastSeen: 0 };
    e.running++;
    if (shared) e.runningShared++;
    e.lastSeen = this.now();
    this.jobs.set(ws, e);
  }

  /** `keep`: the job goes on here (its step answered a result, or it was pinned here already). */
  stepEnded(ws: string, shared: boolean, keep: boolean): void {
    const e = this.jobs.get(ws);
    if (!e) return;
    e.running--;
    if (shared) e.runningShared--;
    e.lastSeen = this.now();
    if (!keep && e.running === 0) this.jobs.delete(ws);
    this.changed();
  }

  /** The job's clean-up ran here: it is over. */
  ended(ws: string): void {
    if (this.jobs.delete(ws)) this.changed();
  }

  /** Workspaces of the jobs in progress. */
  list(): string[] {
    this.sweep();
    return [...this.jobs.keys()];
  }

  get size(): number {
    return this.list().length;
  }

  /** Jobs that hold a place here outside a shared-queue slot: between steps, or in a pinned step. */
  get holding(): number {
    this.sweep();
    let n = 0;
    for (const e of this.jobs.values()) if (e.runningShared === 0) n++;
    return n;
  }

  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private changed(): void {
    for (const fn of this.listeners) fn();
  }

  private sweep(): void {
    const before = this.now() - this.idleMs;
    let swept = false;
    for (const [ws, e] of this.jobs) {
      if (e.running === 0 && e.lastSeen < before) {
        this.jobs.delete(ws);
        swept = true;
      }
    }
    if (swept) this.changed();
  }
}

/**
 * Activity slots of the shared sandbox queue that count jobs, not steps: a host takes a new job
 * only while its jobs in progress (each with a workspace, possibly a tmpfs) and new ones being
 * taken stay within `limit`. So the pinned steps of the jobs it holds always find a slot on its own
 * queue (which has `limit` slots too) well within the schedule-to-start timeout that would call the
 * host lost — however long those steps are.
 */
export function jobSlots(limit: number, jobs: HostJobs): CustomSlotSupplier<ActivitySlotInfo> & { numSlots: number; readonly used: number } {
  let permits = 0;
  // Permits that took a task (the SDK also reserves permits for polls still waiting).
  let inUse = 0;
  const free = () => permits + jobs.holding < limit;
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of [...waiters]) w();
  };
  jobs.onChange(wake);
  // Jobs forgotten by the idle sweep free room without an event: look now and then.
  setInterval(wake, 10_000).unref();
  return {
    type: 'custom',
    // The capacity the metrics report (dotgit_worker_slots).
    numSlots: limit,
    // The places taken (dotgit_worker_slots_used): a job holds one between its steps too, so the SDK's count of running activities would say too few.
    get used() {
      return inUse + jobs.holding;
    },
    async reserveSlot(_ctx, abortSignal): Promise<SlotPermit> {
      while (!free()) {
        await new Promise<void>((resolve, reject) => {
          const done = () => {
            waiters.delete(done);
            abortSignal.removeEventListener('abort', abort);
            resolve();
          };
          const abort = () => {
            waiters.delete(done);
            // The SDK expects the signal's own reason back (anything else is logged as an error).
            reject(abortSignal.reason);
          };
          if (abortSignal.aborted) return abort();
          waiters.add(done);
          abortSignal.addEventListener('abort', abort, { once: true });
        });
      }
      permits++;
      return {};
    },
    tryReserveSlot(): SlotPermit | null {
      if (!free()) return null;
      permits++;
      return {};
    },
    markSlotUsed(): void {
      inUse++;
    },
    releaseSlot(ctx): void {
      permits--;
      if (ctx.slotInfo) inUse = Math.max(0, inUse - 1);
      wake();
    },
  };
}
