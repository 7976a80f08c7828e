import { createWriteStream, type WriteStream } from 'node:fs';
import type { Redis } from '../core/redis';
import { logStreamKey } from '../core/redis';

/** How long a run's live log stream stays in Redis after its last line. */
export const LIVE_LOG_TTL_SECONDS = 24 * 60 * 60;

/** Live lines waiting for Redis beyond this are not streamed (the full log still keeps them), so a flooding step cannot exhaust the worker's memory. */
export const MAX_PENDING_LIVE_LINES = 20_000;
/** A run's live stream keeps about this many entries (XADD MAXLEN ~); older ones are in the stored logs. */
export const MAX_LIVE_STREAM_ENTRIES = 100_000;
/** A step's stored log stops growing here, with a note saying so. */
export const MAX_STEP_LOG_BYTES = 512 * 1024 * 1024;

/**
 * Where a step's output goes while it runs: every line to the run's Redis stream (live logs, in
 * order, batched per tick) and to a local file that becomes the step's whole log at the end.
 */
export class LogSink {
  private queue: string[][] = [];
  private pending = 0;
  private droppedLive = 0;
  private logBytes = 0;
  private capped = false;
  private flushing: Promise<void> = Promise.resolve();
  private readonly file: WriteStream;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly runId: string,
    private readonly job: string,
    private readonly step: string,
    filePath: string,
    /** Applied to every line before it is stored or streamed (secret masking). */
    private readonly filter: (line: string) => string = (line) => line,
  ) {
    this.file = createWriteStream(filePath);
  }

  line(stream: 'stdout' | 'stderr', raw: string): void {
    const text = this.filter(raw);
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
    this.queue.push(['job', this.job, 'step', this.step, 'stream', stream, 'line', text]);
    this.timer ??= setTimeout(() => this.flush(), 50);
  }

  private flush(): Promise<void> {
    this.timer = undefined;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return this.flushing;
    this.flushing = this.flushing.then(async () => {
      const p = this.redis.pipeline();
      const key = logStreamKey(this.runId);
      for (const fields of batch) p.xadd(key, 'MAXLEN', '~', MAX_LIVE_STREAM_ENTRIES, '*', ...fields);
      // The whole log is kept in the object store; the live stream only has to outlive watchers.
      p.expire(key, LIVE_LOG_TTL_SECONDS);
      // Live logs are a convenience: losing Redis must not fail the step (the full log still reaches the object store).
      await p.exec().catch(() => undefined);
      this.pending -= batch.length;
    });
    return this.flushing;
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    await this.flush();
    await new Promise<void>((resolve, reject) => this.file.end((err?: Error | null) => (err ? reject(err) : resolve())));
  }
}
