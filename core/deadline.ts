/**
 * `p`, or the error `late()` makes once `ms` have passed, whichever comes first. The timer is
 * cleared when `p` settles and never keeps the process alive; a rejection of `p` after the deadline
 * is swallowed (it is no one's unhandled rejection). `p` itself is not cancelled: the caller stops
 * waiting, and what `p` was doing finishes or fails on its own.
 */
export function withDeadline<T>(p: Promise<T>, ms: number, late: () => unknown): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(late()), ms);
    timer.unref();
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
