import { createWriteStream, type WriteStream } from 'node:fs';
import type { Redis } from '../core/redis';
import { logStreamKey } from '../core/redis';

/** How long a run's live log stream stays in Redis after its last line. */
export const LIVE_LOG_TTL_SECONDS = 24 * 60 * 60;

/**
 * Where a step's output goes while it runs: every line to the run's Redis stream (live logs, in
 * order, batched per tick) and to a local file that becomes the step's whole log at the end.
 */
export class LogSink {
  private queue: string[][] = [];
  private flushing: Promise<void> = Promise.resolve();
  private readonly file: WriteStream;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly runId: string,
    private readonly job: string,
    private readonly step: string,
    filePath: string,
  ) {
    this.file = createWriteStream(filePath);
  }

  line(stream: 'stdout' | 'stderr', text: string): void {
    this.file.write(text + '\n');
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
      for (const fields of batch) p.xadd(key, '*', ...fields);
      // The whole log is kept in the object store; the live stream only has to outlive watchers.
      p.expire(key, LIVE_LOG_TTL_SECONDS);
      // Live logs are a convenience: losing Redis must not fail the step (the full log still reaches the object store).
      await p.exec().catch(() => undefined);
    });
    return this.flushing;
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    await this.flush();
    await new Promise<void>((resolve, reject) => this.file.end((err?: Error | null) => (err ? reject(err) : resolve())));
  }
}
