import { UnavailableError } from '../core/errors';

/**
 * One writer per repository at a time (in this process). Readers never take it. A push that cannot
 * get the lock within `timeoutMs` fails with a clear error instead of queueing forever.
 */
export class RepoWriteLocks {
  private readonly tails = new Map<string, Promise<void>>();

  async acquire(repo: string, timeoutMs = 120_000): Promise<() => void> {
    const previous = this.tails.get(repo) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.tails.set(repo, tail);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
    const won = await Promise.race([previous.then(() => 'ok' as const), timedOut]);
    clearTimeout(timer);
    const done = () => {
      release();
      if (this.tails.get(repo) === tail) this.tails.delete(repo);
    };
    if (won === 'timeout') {
      // Keep the queue intact: release our slot as soon as the previous holder is done.
      void previous.then(done);
      throw new UnavailableError(`repository ${repo} is busy with another push; try again`);
    }
    return done;
  }
}
