import { createWriteStream, type WriteStream } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import client from 'prom-client';
import type { Redis } from '../core/redis';
import { logStreamKey } from '../core/redis';
import { appendStreamEntry, MAX_RUN_EVENTS, RUN_EVENTS_TTL_SECONDS } from '../core/run-events';

/** Live lines waiting for Redis beyond this are not streamed (the full log still keeps them), so a flooding step cannot exhaust the worker's memory. */
export const MAX_PENDING_LIVE_LINES = 20_000;
/** A step's stored log stops growing here, with a note saying so. */
export const MAX_STEP_LOG_BYTES = 512 * 1024 * 1024;

/** A line from the sandbox until Redis has it in the run's stream (what a live-log watcher waits for beyond its own read). */
const liveLatency = new client.Histogram({
  name: 'dotgit_live_log_line_latency_seconds',
  help: "Live-log lines: from the sandbox's output until the line is in the run's Redis stream",
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
});

/**
 * Where a step's output goes while it runs: every line to the run's Redis stream (live logs, in
 * order, batched per tick) and to a local file that becomes the step's whole log at the end.
 */
export class LogSink {
  private queue: string[][] = [];
  /** When each queued line arrived (performance.now()), for the live-log latency. */
  private arrived: number[] = [];
  private pending = 0;
  private droppedLive = 0;
  private logBytes = 0;
  private capped = false;
  private flushing: Promise<void> = Promise.resolve();
  private readonly file: WriteStream;
  private scheduled = false;

  constructor(
    private readonly redis: Redis,
    private readonly runId: string,
    private readonly job: string,
    private readonly step: string,
    filePath: string,
    /** The step's attempt number, on every live line: a re-run's lines are told apart from the lost attempt's. */
    private readonly attempt = 1,
  ) {
    this.file = createWriteStream(filePath);
  }

  /** One line, already masked (the sandbox masks secrets before it cuts lines). */
  line(stream: 'stdout' | 'stderr', text: string): void {
    if (!this.capped) {
      this.logBytes += Buffer.byteLength(text) + 1;
      if (this.logBytes > MAX_STEP_LOG_BYTES) {
        this.capped = true;
        this.file.write(`dotgit: log limit of ${MAX_STEP_LOG_BYTES} bytes reached; further output is discarded\n`);
      } else this.file.write(text + '\n');
    }
    if (this.pending >= MAX_PENDING_LIVE_LINES) {
      this.droppedLive++;
      return;
    }
    if (this.droppedLive > 0) {
      this.enqueue('stderr', `dotgit: ${this.droppedLive} lines were not streamed live (the stored log has them)`);
      this.droppedLive = 0;
    }
    this.enqueue(stream, text);
  }

  private enqueue(stream: 'stdout' | 'stderr', text: string): void {
    this.pending++;
    this.queue.push(liveLineFields(this.job, this.step, stream, text, this.attempt));
    this.arrived.push(performance.now());
    this.schedule();
  }

  /**
   * Lines go out as soon as the current chunk of output is split (a microtask later), in one
   * pipeline; lines printed while a write is in flight wait for it and go out together next.
   * No timer: live-log latency is one Redis round trip.
   */
  private schedule(): Promise<void> {
    if (!this.scheduled) {
      this.scheduled = true;
      this.flushing = this.flushing.then(() => this.writeBatch());
    }
    return this.flushing;
  }

  private async writeBatch(): Promise<void> {
    this.scheduled = false;
    const batch = this.queue;
    const arrived = this.arrived;
    this.queue = [];
    this.arrived = [];
    if (batch.length === 0) return;
    const p = this.redis.pipeline();
    const key = logStreamKey(this.runId);
    for (const fields of batch) p.xadd(key, 'MAXLEN', '~', MAX_RUN_EVENTS, '*', ...fields);
    // The whole log is kept in the object store; the live stream only has to outlive watchers.
    p.expire(key, RUN_EVENTS_TTL_SECONDS);
    // Live logs are a convenience: losing Redis must not fail the step (the full log still reaches the object store).
    const written = await p.exec().then(
      (results) => (results ?? []).every(([err]) => !err),
      () => false,
    );
    if (written) {
      const now = performance.now();
      for (const t of arrived) liveLatency.observe((now - t) / 1000);
    }
    this.pending -= batch.length;
  }

  async close(): Promise<void> {
    await this.schedule();
    await new Promise<void>((resolve, reject) => this.file.end((err?: Error | null) => (err ? reject(err) : resolve())));
  }
}

/** A live log line's stream entry (toRunEvent in core/run-events.ts reads it back). */
function liveLineFields(job: string, step: string, stream: 'stdout' | 'stderr', text: string, attempt: number): string[] {
  return ['job', job, 'step', step, 'stream', stream, 'line', text, 'attempt', String(attempt)];
}

/**
 * One line of dotgit's own, written after the step's sink has closed (artifact uploads, a cache
 * saved, a timeout): to the stored log and, best effort, to the live stream, so a watcher sees
 * what `logs` will show.
 */
export async function appendLateLine(redis: Redis | undefined, o: { runId: string; job: string; step: string; attempt: number; logFile: string }, text: string): Promise<void> {
  await appendFile(o.logFile, text + '\n');
  if (redis) await appendStreamEntry(redis, o.runId, liveLineFields(o.job, o.step, 'stderr', text, o.attempt));
}
