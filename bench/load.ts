/**
 * A closed-loop HTTP load: `connections` keep-alive connections, each sending the same GET again as
 * soon as the previous answer is complete, for a fixed time. Run by wrk when it is available (it
 * costs the shared cores little), else by a small Node generator in this process.
 */
import { promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { runProcess } from './lib';
import { WRK_SCRIPT } from './wrk';

export interface LoadOptions {
  url: string;
  headers: Record<string, string>;
  connections: number;
  durationMs: number;
}

export interface LoadResult {
  /** Completed requests (answers read in full). */
  requests: number;
  durationMs: number;
  /** requests ÷ duration. */
  rps: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  /** Answers with a status outside 200–299. */
  non2xx: number;
  /** Connect, read and write errors and timeouts. */
  socketErrors: number;
}

export class LoadGenerator {
  private scriptFile: string | undefined;

  /** `wrkPath` undefined: the Node generator. `scratch`: where wrk's script is written. */
  constructor(
    readonly wrkPath: string | undefined,
    private readonly scratch: string,
  ) {}

  get tool(): string {
    return this.wrkPath ? 'wrk' : 'a Node generator (http.Agent keep-alive, in the bench process)';
  }

  /**
   * `graceful`: the Node generator even when wrk is there; it stops sending at the deadline and
   * waits for the answers in flight, where wrk closes its connections with requests still open.
   */
  run(o: LoadOptions, opts: { graceful?: boolean } = {}): Promise<LoadResult> {
    return this.wrkPath && !opts.graceful ? this.runWrk(this.wrkPath, o) : nodeLoad(o);
  }

  private async runWrk(wrk: string, o: LoadOptions): Promise<LoadResult> {
    if (!this.scriptFile) {
      this.scriptFile = path.join(this.scratch, 'bench.lua');
      await fs.writeFile(this.scriptFile, WRK_SCRIPT);
    }
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
    Object.entries(o.headers).forEach(([name, value], i) => (env[`BENCH_HEADER_${i + 1}`] = `${name}: ${value}`));
    const seconds = Math.max(1, Math.round(o.durationMs / 1000));
    // One thread: the client shares the cores with the platform; one wrk thread drives far more than
    // the services answer. --timeout well above any answer seen, so a slow one is a latency, not an error.
    const r = await runProcess(wrk, ['-t1', `-c${o.connections}`, `-d${seconds}s`, '--timeout', '10s', '-s', this.scriptFile, o.url], { env });
    const line = /^BENCH_RESULT (\{.*\})$/m.exec(r.stdout);
    if (r.code !== 0 || !line) throw new Error(`wrk exited ${r.code} without a result: ${(r.stderr || r.stdout).trim().slice(0, 500)}`);
    const j = JSON.parse(line[1]!) as { requests: number; durationUs: number; non2xx: number; socketErrors: number; timeouts: number; p50: number; p90: number; p99: number; max: number; mean: number };
    const durationMs = j.durationUs / 1000;
    return {
      requests: j.requests,
      durationMs,
      rps: j.requests / (durationMs / 1000),
      p50Ms: j.p50 / 1000,
      p90Ms: j.p90 / 1000,
      p99Ms: j.p99 / 1000,
      maxMs: j.max / 1000,
      meanMs: j.mean / 1000,
      non2xx: j.non2xx,
      socketErrors: j.socketErrors + j.timeouts,
    };
  }
}

/**
 * The fallback (and the graceful warm-up): `connections` loops over one keep-alive agent, latencies
 * kept in full; at the deadline no loop starts another request and the ones in flight complete.
 */
async function nodeLoad(o: LoadOptions): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.connections });
  const url = new URL(o.url);
  const latencies: number[] = [];
  let non2xx = 0;
  let socketErrors = 0;
  const started = performance.now();
  const deadline = started + o.durationMs;
  const one = () =>
    new Promise<void>((resolve) => {
      const t = performance.now();
      const req = http.request({ agent, hostname: url.hostname, port: url.port, path: url.pathname + url.search, method: 'GET', headers: o.headers }, (res) => {
        res.on('data', () => undefined);
        res.on('end', () => {
          latencies.push(performance.now() - t);
          if (!res.statusCode || res.statusCode < 200 || res.statusCode > 299) non2xx++;
          resolve();
        });
        res.on('error', () => {
          socketErrors++;
          resolve();
        });
      });
      req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
      req.on('error', () => {
        socketErrors++;
        resolve();
      });
      req.end();
    });
  await Promise.all(
    Array.from({ length: o.connections }, async () => {
      while (performance.now() < deadline) await one();
    }),
  );
  const durationMs = performance.now() - started;
  agent.destroy();
  const s = latencies.sort((a, b) => a - b);
  const pct = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! : NaN);
  return {
    requests: s.length,
    durationMs,
    rps: s.length / (durationMs / 1000),
    p50Ms: pct(50),
    p90Ms: pct(90),
    p99Ms: pct(99),
    maxMs: s.at(-1) ?? NaN,
    meanMs: s.reduce((n, x) => n + x, 0) / (s.length || 1),
    non2xx,
    socketErrors,
  };
}
