import net from 'node:net';
import type { RuntimeOptions } from '@temporalio/worker';

/**
 * The Temporal SDK's own metrics (`temporal_*`: task latencies, slots, polls, sticky cache, activity
 * and workflow outcomes) come from its Rust core, which can only serve them on a Prometheus
 * endpoint of its own. The worker binds that endpoint to a free loopback port and appends its text
 * to its own `/metrics`, so each worker stays one scrape target (ADR 0018).
 */
export interface SdkMetrics {
  /** For `Runtime.install({ telemetryOptions })`. */
  telemetryOptions: NonNullable<RuntimeOptions['telemetryOptions']>;
  /** The SDK's current metrics as Prometheus text ('' while its endpoint does not answer). */
  scrape(): Promise<string>;
}

export async function sdkMetrics(): Promise<SdkMetrics> {
  const port = await freeLoopbackPort();
  const url = `http://127.0.0.1:${port}/metrics`;
  return {
    telemetryOptions: {
      metrics: {
        prometheus: { bindAddress: `127.0.0.1:${port}`, countersTotalSuffix: true, useSecondsForDurations: true, unitSuffix: true },
      },
    },
    scrape: async () => {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      return res.ok ? await res.text() : '';
    },
  };
}

/** A loopback port nothing listens on right now (the SDK binds it moments later). */
function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
