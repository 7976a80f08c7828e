import type http from 'node:http';
import { errorBody } from './http';
import type { Logger } from './logger';

export interface HttpDrainOptions {
  /** Seconds a drain lets requests in flight finish before it cuts their connections. */
  graceSeconds: number;
  /**
   * Keep accepting connections while draining, each answered 503 (its health path says `draining`),
   * so a load balancer or a client asking anew learns why instead of finding the port closed.
   */
  keepListening?: boolean;
  /** Answered 503 `{"status":"draining"}` while draining, so a load balancer takes the instance out. */
  healthPath?: string;
}

export interface DrainResult {
  /** Requests still running when the grace period ended (their connections were cut); 0 = all finished. */
  cut: number;
}

/** Seconds a client is told to wait before it tries again (most likely on another instance). */
const RETRY_AFTER_SECONDS = 5;

/**
 * Graceful stop of HTTP servers: wrap the request handler with `handler`, call `drain()` on SIGTERM.
 * Requests in flight finish (within the grace period); new ones, on kept-alive sockets or (with
 * `keepListening`) on new connections, get 503 + Retry-After + `Connection: close`. Node's own
 * server.close()/closeIdleConnections()/closeAllConnections() do the socket work; this only counts
 * requests, which Node does not expose.
 */
export class HttpDrain {
  private readonly servers: http.Server[] = [];
  private readonly inFlight = new Set<http.ServerResponse>();
  private draining = false;
  private onIdle: (() => void) | undefined;

  constructor(private readonly o: HttpDrainOptions) {}

  get isDraining(): boolean {
    return this.draining;
  }

  get requestsInFlight(): number {
    return this.inFlight.size;
  }

  /** The servers to close when the drain starts (listening stops) and ends (all connections). */
  add(server: http.Server): http.Server {
    this.servers.push(server);
    return server;
  }

  handler(app: http.RequestListener): http.RequestListener {
    return (req, res) => {
      if (this.draining) {
        this.refuse(req, res);
        return;
      }
      this.inFlight.add(res);
      // A draining server closes each socket once its last response is out.
      if (this.draining) res.setHeader('Connection', 'close');
      res.once('close', () => {
        this.inFlight.delete(res);
        if (!this.draining) return;
        for (const s of this.servers) s.closeIdleConnections();
        if (this.inFlight.size === 0) this.onIdle?.();
      });
      app(req, res);
    };
  }

  /** Starts the drain; resolves when every request in flight has ended or the grace period cut them. Idempotent. */
  drain(): Promise<DrainResult> {
    this.draining = true;
    // Responses not begun yet close their socket when done, so no client sends on it again.
    for (const res of this.inFlight) if (!res.headersSent) res.setHeader('Connection', 'close');
    if (!this.o.keepListening) for (const s of this.servers) if (s.listening) s.close();
    for (const s of this.servers) s.closeIdleConnections();
    return new Promise<DrainResult>((resolve) => {
      const finish = (cut: number) => {
        clearTimeout(timer);
        this.onIdle = undefined;
        for (const s of this.servers) {
          if (s.listening) s.close();
          s.closeAllConnections();
        }
        resolve({ cut });
      };
      const timer = setTimeout(() => finish(this.inFlight.size), this.o.graceSeconds * 1000);
      this.onIdle = () => finish(0);
      if (this.inFlight.size === 0) finish(0);
    });
  }

  private refuse(req: http.IncomingMessage, res: http.ServerResponse): void {
    const body = JSON.stringify(
      req.url?.split('?')[0] === this.o.healthPath
        ? { status: 'draining' }
        : errorBody('unavailable', `this instance is shutting down; retry in ${RETRY_AFTER_SECONDS} s (another instance may answer at once)`, (req.headers['x-request-id'] as string | undefined) ?? undefined),
    );
    res.writeHead(503, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'Retry-After': String(RETRY_AFTER_SECONDS), Connection: 'close' });
    res.end(body);
    // The request body (e.g. a pack) is not read: the socket closes after the answer.
  }
}

export interface StopOnSignalsOptions {
  /** `git-server`, `gateway`: in the log lines. */
  name: string;
  log: Logger;
  drain: HttpDrain;
  /** After the HTTP drain, within `deadline` (ms since the epoch): background work to stop. */
  after?: (deadline: number) => Promise<void>;
  /** Connection pools to close; given 2 s at most. */
  close: () => Promise<unknown>;
}

/**
 * On SIGTERM or SIGINT: the drain, then `after`, then `close`, then exit 0 (the stop was asked
 * for, even when the grace cut requests). A second signal exits at once.
 */
export function stopOnSignals(o: StopOnSignalsOptions & { graceSeconds: number }): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      o.log.warn({ signal }, 'second signal: exiting now');
      process.exit(0);
    }
    stopping = true;
    const deadline = Date.now() + o.graceSeconds * 1000;
    o.log.info({ signal, drainSeconds: o.graceSeconds, requests: o.drain.requestsInFlight }, `${o.name} draining: new requests get 503; requests in flight finish`);
    void (async () => {
      const { cut } = await o.drain.drain();
      if (cut > 0) o.log.warn({ cut }, 'drain period over; cut the requests still running');
      await o.after?.(deadline);
      await Promise.race([o.close(), new Promise((r) => setTimeout(r, 2000).unref())]);
      o.log.info(`${o.name} stopped`);
      process.exit(0);
    })();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
