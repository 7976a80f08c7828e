import { TooManyRequestsError, UnavailableError } from '../core/errors';

export interface LimiterOptions {
  /** How many may run at once per key. */
  concurrency: number;
  /** How many may wait per key; beyond that, 429 at once. */
  queue: number;
  /** How long one may wait for a slot before 503. */
  maxWaitMs: number;
}

/**
 * Per-key concurrency limit with a bounded queue (Gitaly's backpressure for upload-pack): a
 * popular repository cannot take every CPU, and clients told to come back (429/503 with
 * Retry-After) instead of piling up.
 */
export class KeyedLimiter {
  private readonly running = new Map<string, number>();
  private readonly waiting = new Map<string, Array<() => void>>();

  constructor(private readonly o: LimiterOptions) {}

  async acquire(key: string): Promise<() => void> {
    const active = this.running.get(key) ?? 0;
    if (active < this.o.concurrency) {
      this.running.set(key, active + 1);
      return this.releaser(key);
    }
    const queue = this.waiting.get(key) ?? [];
    if (queue.length >= this.o.queue) {
      throw new TooManyRequestsError(`${key} is serving ${active} fetches and ${queue.length} are waiting; try again shortly`, 5);
    }
    this.waiting.set(key, queue);
    return new Promise((resolve, reject) => {
      const wake = () => {
        clearTimeout(timer);
        resolve(this.releaser(key));
      };
      const timer = setTimeout(() => {
        const q = this.waiting.get(key) ?? [];
        const i = q.indexOf(wake);
        if (i >= 0) q.splice(i, 1);
        reject(new UnavailableError(`${key} stayed busy for ${this.o.maxWaitMs} ms; try again`, 10));
      }, this.o.maxWaitMs);
      queue.push(wake);
    });
  }

  /** Current use, for metrics and tests. */
  stats(key: string): { running: number; waiting: number } {
    return { running: this.running.get(key) ?? 0, waiting: this.waiting.get(key)?.length ?? 0 };
  }

  private releaser(key: string): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.get(key)?.shift();
      if (next) {
        next(); // the slot passes straight to the next waiter
        return;
      }
      const n = (this.running.get(key) ?? 1) - 1;
      if (n <= 0) this.running.delete(key);
      else this.running.set(key, n);
      if (this.waiting.get(key)?.length === 0) this.waiting.delete(key);
    };
  }
}
