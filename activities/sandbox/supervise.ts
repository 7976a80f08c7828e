/**
 * The part every driver shares: stream a child's output line by line, enforce the wall-clock limit,
 * honour the abort signal, and escalate SIGTERM -> SIGKILL through driver-specific stop hooks.
 */
import type { ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { LineSplitter } from './line-splitter';
import type { SandboxResult, SandboxRunOptions } from './sandbox-driver';

export interface StopHooks {
  /** Ask the command to stop (SIGTERM to everything in the sandbox). Errors are ignored.
   * `alive` tells whether the child is still running, for hooks that retry. */
  term(alive: () => boolean): Promise<void>;
  /** Force it (SIGKILL). Errors are ignored. After this, the child itself is SIGKILLed if still alive. */
  kill(): Promise<void>;
}

export interface SuperviseOptions {
  /** Time between SIGTERM and SIGKILL. */
  graceMs?: number;
  /** After the child exited, how long to wait for its stdout/stderr to reach EOF before giving up
   * (a leaked descendant could otherwise hold the pipes open forever). */
  drainMs?: number;
}

/** Exit code reported when the step was cancelled before it started. 143 = killed by SIGTERM. */
const NOT_STARTED_EXIT = 128 + constants.signals.SIGTERM;
/** Exit code of a step stopped by its timeout that ended on SIGTERM, whatever it exited with (coreutils `timeout` answers the same). */
export const TIMED_OUT_EXIT = 124;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

export async function supervise(
  opts: Pick<SandboxRunOptions, 'timeoutMs' | 'onLine' | 'signal' | 'mask'>,
  start: () => ChildProcess,
  hooks: StopHooks,
  { graceMs = 3000, drainMs = 2000 }: SuperviseOptions = {},
): Promise<SandboxResult> {
  if (opts.signal?.aborted) return { exitCode: NOT_STARTED_EXIT, timedOut: false, cancelled: true };

  // A throwing onLine must not crash the worker from inside a stream callback; remember and rethrow.
  let callbackError: unknown;
  const deliver = (stream: 'stdout' | 'stderr') => (line: string) => {
    if (callbackError !== undefined) return;
    try {
      opts.onLine(stream, line);
    } catch (err) {
      callbackError = err;
    }
  };
  const out = new LineSplitter(deliver('stdout'), undefined, opts.mask);
  const err = new LineSplitter(deliver('stderr'), undefined, opts.mask);

  const child = start();
  child.stdout?.on('data', (chunk: Buffer) => out.push(chunk));
  child.stderr?.on('data', (chunk: Buffer) => err.push(chunk));

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject); // spawn failure (e.g. binary missing): an infrastructure error
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  let hasExited = false;
  void exited.then(() => (hasExited = true), () => (hasExited = true));

  // The first of timeout/abort wins; the other is not reported.
  let cause: 'timeout' | 'abort' | undefined;
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      await hooks.term(() => !hasExited).catch(() => undefined);
      await Promise.race([exited.catch(() => undefined), sleep(graceMs)]);
      if (hasExited) return;
      await hooks.kill().catch(() => undefined);
      await Promise.race([exited.catch(() => undefined), sleep(graceMs)]);
      if (!hasExited) child.kill('SIGKILL');
    })();
  };
  const timer = setTimeout(() => {
    cause ??= 'timeout';
    stop();
  }, opts.timeoutMs);
  const onAbort = () => {
    cause ??= 'abort';
    stop();
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });

  try {
    const { code, signal } = await exited;
    await Promise.race([closed, sleep(drainMs)]);
    child.stdout?.destroy();
    child.stderr?.destroy();
    out.flush();
    err.flush();
    if (stopping) await stopping;
    if (callbackError !== undefined) throw callbackError;
    const exitCode = code ?? 128 + (signal ? constants.signals[signal] : constants.signals.SIGKILL);
    // A timeout is a failure even when the step catches SIGTERM and exits 0 (issue 10).
    const forced = exitCode === 128 + constants.signals.SIGKILL;
    if (cause === 'timeout') return { exitCode: forced ? exitCode : TIMED_OUT_EXIT, timedOut: true, cancelled: false };
    return { exitCode, timedOut: false, cancelled: cause === 'abort' };
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onAbort);
  }
}
