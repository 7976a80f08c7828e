import http from 'node:http';
import https from 'node:https';
import { Transform } from 'node:stream';
import { BrokenCircuitError, CircuitState, ConsecutiveBreaker, ExponentialBackoff, TaskCancelledError, circuitBreaker, handleWhen, retry, type IPolicy } from 'cockatiel';
import client from 'prom-client';
import { errorBody } from '../core/http';
import type { UpstreamInstance, UpstreamPool } from '../core/upstream-pool';
import { readWholeBody, replayablePost } from './idempotency';
import { PACK_FILE_HEADER, PACK_VOLUME_HEADER } from '../core/pack-handoff';
import { GATEWAY_UPSTREAM_IDLE_MS } from '../core/keep-alive';
import type { PackFiles } from './pack-files';
import { sendJson, type EdgeRequest } from './edge-request';

/** Hop-by-hop headers (RFC 9110 §7.6.1) and our internal ones never cross the gateway as sent. */
/**
 * Internal headers a client must never set (nor see in an answer): identities, service tokens, what
 * storage nodes send each other (forwarding, replica reads) and the pack-cache handoff (ADR 0040).
 * LFS action tokens pass.
 */
export const INTERNAL_HEADERS = ['x-dotgit-identity', 'x-dotgit-service', 'x-dotgit-forwarded-by', 'x-dotgit-replica-read', 'x-dotgit-replica-head', PACK_VOLUME_HEADER, PACK_FILE_HEADER];

/** Not sent on: hop-by-hop headers and the internal ones. */
const DROP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'host', ...INTERNAL_HEADERS]);

// Pooled connections are dropped after GATEWAY_UPSTREAM_IDLE_MS idle, before the upstream would close them (core/keep-alive.ts).
const agents = {
  http: new http.Agent({ keepAlive: true, maxSockets: 256, timeout: GATEWAY_UPSTREAM_IDLE_MS }),
  https: new https.Agent({ keepAlive: true, maxSockets: 256, timeout: GATEWAY_UPSTREAM_IDLE_MS }),
};

/** A request to `url`'s instance over http or https (instance lists may name either), on a kept-alive socket. */
export function upstreamRequest(url: URL, options: http.RequestOptions): http.ClientRequest {
  const secure = url.protocol === 'https:';
  return (secure ? https : http).request({ agent: secure ? agents.https : agents.http, hostname: url.hostname, port: url.port, ...options });
}

/** Thrown (inside the retry policy) when an idempotent request got 502/503/504 from the upstream. */
class UpstreamStatusError extends Error {
  override readonly name = 'UpstreamStatusError';
  /**
   * `answer`: the upstream's headers and (small) body, relayed when no retry does better: its own
   * message and `Retry-After` (a draining instance, a storage node that is down) say more than ours.
   */
  constructor(
    readonly status: number,
    readonly answer?: { headers: http.IncomingHttpHeaders; body: Buffer },
  ) {
    super(`upstream answered ${status}`);
  }
}

/** Largest 502-504 body kept for relaying after the retries; a larger one is replaced by our own message. */
const RELAYED_ERROR_BYTES = 64 * 1024;

/** Thrown when the client went away: not the upstream's fault, so neither retried nor counted by the breaker. */
class ClientGoneError extends Error {
  override readonly name = 'ClientGoneError';
}

/**
 * The connection to an instance failed before it was made (refused, unreachable, not made within
 * CONNECT_TIMEOUT_MS): nothing reached the instance, so the request may go to another one, even
 * a POST or a push.
 */
class NotSentError extends Error {
  override readonly name = 'NotSentError';
  constructor(readonly reason: Error) {
    super(reason.message);
  }
}

/** No instance of the upstream can be tried (all taken out): 503 with Retry-After. */
export class NoInstanceError extends Error {
  override readonly name = 'NoInstanceError';
  constructor(readonly pool: UpstreamPool) {
    super(`no ${pool.name} instance is reachable (${pool.describe()})`);
  }
}

/** Only upstream trouble counts: a client that left or sent too much says nothing about the upstream. */
const upstreamFailures = handleWhen((err) => !(err instanceof ClientGoneError) && !(err instanceof BodyTooLargeError));

/** Thrown when a streamed request body passes its limit. */
class BodyTooLargeError extends Error {
  override readonly name = 'BodyTooLargeError';
}

/** A new connection to an instance must be made within this; else the request goes to another instance. */
const CONNECT_TIMEOUT_MS = 5000;

export interface UpstreamPolicies {
  /**
   * Bodiless idempotent requests and POSTs with an Idempotency-Key (body held in memory): up to 3
   * retries with exponential backoff and jitter; each attempt picks an instance afresh.
   */
  retry: IPolicy;
  /**
   * How long a retried attempt waits for response headers (other requests, e.g. pushes, are not
   * bounded); past it the attempt fails as timed out. A timer of the attempt's own: cockatiel's
   * timeout policy made an AbortController, two listeners and a promise race per request.
   */
  attemptTimeoutMs: number;
  /** The circuit breaker of one instance, made on first use: one failing api does not stop the others. */
  breakerFor(instance: UpstreamInstance): IPolicy;
  /** Upstream hits by attempt, for tests and metrics. */
  attempts: number;
}

/** Breaker states as metric label values. */
const STATE_NAMES: Record<CircuitState, string> = { [CircuitState.Closed]: 'closed', [CircuitState.Open]: 'open', [CircuitState.HalfOpen]: 'half_open', [CircuitState.Isolated]: 'isolated' };

// Labels: the upstream's name and the instance's host:port, both from configuration (bounded).
const breakerState = new client.Gauge({
  name: 'dotgit_circuit_breaker_state',
  help: "Each upstream instance's circuit breaker: 1 for its current state (closed, open, half_open, isolated), 0 for the others",
  labelNames: ['upstream', 'address', 'state'],
});
const breakerOpens = new client.Counter({ name: 'dotgit_circuit_breaker_opens_total', help: "Times an upstream instance's circuit breaker opened", labelNames: ['upstream', 'address'] });

function reportBreakerState(upstream: string, address: string, state: CircuitState): void {
  for (const [s, name] of Object.entries(STATE_NAMES)) breakerState.set({ upstream, address, state: name }, Number(s) === state ? 1 : 0);
}

/**
 * Resilience for one upstream (cockatiel): per instance a circuit breaker that opens after 5
 * consecutive failures (connection errors, 502-504 on idempotent requests) and half-opens after
 * `halfOpenAfterMs`; per upstream the retries and the attempt time limit. `name` labels the
 * breakers' metrics (`dotgit_circuit_breaker_state`, `…_opens_total`).
 */
export function upstreamPolicies(o: { name?: string; halfOpenAfterMs?: number; retryInitialDelayMs?: number; attemptTimeoutMs?: number } = {}): UpstreamPolicies {
  const breakers = new WeakMap<UpstreamInstance, IPolicy>();
  const breakerFor = (instance: UpstreamInstance): IPolicy => {
    let breaker = breakers.get(instance);
    if (!breaker) {
      const made = circuitBreaker(upstreamFailures, { halfOpenAfter: o.halfOpenAfterMs ?? 10_000, breaker: new ConsecutiveBreaker(5) });
      const labels = { upstream: o.name ?? 'upstream', address: instance.url.host };
      reportBreakerState(labels.upstream, labels.address, made.state);
      made.onStateChange((state) => reportBreakerState(labels.upstream, labels.address, state));
      made.onBreak(() => breakerOpens.inc(labels));
      breaker = made;
      breakers.set(instance, breaker);
    }
    return breaker;
  };
  const retries = retry(upstreamFailures, { maxAttempts: 3, backoff: new ExponentialBackoff({ initialDelay: o.retryInitialDelayMs ?? 100, maxDelay: 2000 }) });
  return { retry: retries, attemptTimeoutMs: o.attemptTimeoutMs ?? 30_000, breakerFor, attempts: 0 };
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS']);

/** How much of a refused request body is read and thrown away to keep the connection usable. */
export const DRAIN_CAP_BYTES = 64 * 1024 * 1024;

/**
 * Reads and discards the rest of a request body that will not be used (the answer came first), so
 * the client can finish sending, read the answer, and reuse the connection. Past the cap the
 * connection is closed instead (an endless body must not keep a socket busy).
 */
export function drainRequest(req: http.IncomingMessage, cap = DRAIN_CAP_BYTES): void {
  if (req.complete) return;
  req.unpipe();
  let seen = 0;
  req.on('data', (chunk: Buffer) => {
    seen += chunk.length;
    if (seen > cap) req.socket.destroy();
  });
  req.resume();
}

/**
 * Streams the request to an instance of `pool` and the answer back, without buffering either (git
 * packs can be large); `extraHeaders` carry the request id, traceparent and signed identity.
 * Bodiless idempotent requests are retried, and so are POSTs with an Idempotency-Key whose small
 * body is held for the next attempt; a body past `bodyLimit` is cut off with 413. Any request
 * whose connection to the picked instance could not be made goes to the next instance (nothing
 * reached the first, so this holds for pushes too); that instance is taken out of the pool.
 */
export async function forward(
  req: EdgeRequest,
  res: http.ServerResponse,
  pool: UpstreamPool,
  extraHeaders: Record<string, string>,
  o: { policies: UpstreamPolicies; bodyLimit: number; packFiles?: PackFiles },
): Promise<void> {
  // for-in rather than Object.entries: no array per header on every request's path.
  const headers: http.OutgoingHttpHeaders = {};
  for (const k in req.headers) {
    const v = req.headers[k];
    if (v !== undefined && !DROP.has(k)) headers[k] = v;
  }
  for (const k in extraHeaders) headers[k] = extraHeaders[k];
  const idempotent = IDEMPOTENT.has(req.method) && !req.headers['content-length'] && !req.headers['transfer-encoding'];
  let replayBody: Buffer | undefined;
  if (!idempotent && replayablePost(req, req.path)) {
    try {
      replayBody = await readWholeBody(req);
    } catch {
      res.destroy(); // the client left mid-body: nothing to answer
      return;
    }
  }
  const retried = idempotent || replayBody !== undefined;
  let current: http.ClientRequest | undefined;
  let clientGone = false;
  // A client that goes away (mid-request or mid-answer) must free the upstream socket at once.
  res.on('close', () => {
    if (res.writableFinished) return;
    clientGone = true;
    current?.destroy(new ClientGoneError('the client went away'));
  });

  const attempt = (instance: UpstreamInstance, timeoutMs?: number) =>
    new Promise<http.IncomingMessage>((resolve, reject) => {
      if (clientGone) {
        reject(new ClientGoneError('the client went away'));
        return;
      }
      o.policies.attempts++;
      const upstream = instance.url;
      const out = upstreamRequest(upstream, { method: req.method, path: req.originalUrl, headers });
      current = out;
      // The attempt's time limit cuts the request, failing the attempt as timed out (504 once the
      // retries are spent). It bounds the wait for response headers only: the answer then streams.
      let timedOut = false;
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              timedOut = true;
              out.destroy(new TaskCancelledError(`no answer from ${upstream.host} in time`));
            }, timeoutMs);
      let connected = false;
      let answered = false;
      out.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (clientGone) reject(new ClientGoneError('the client went away'));
        else if (timedOut) reject(err);
        else if (!connected) reject(new NotSentError(err));
        else {
          // A new connection reset before any answer: the instance may have died; a probe tells at
          // once (a kept-alive one may just have been closed as idle). Bytes were sent: not re-sent here.
          if (!answered && !out.reusedSocket && (err.code === 'ECONNRESET' || err.message === 'socket hang up')) pool.recheck(instance);
          reject(err);
        }
      });
      out.on('response', (up) => {
        answered = true;
        const status = up.statusCode ?? 502;
        if (retried && status >= 502 && status <= 504) {
          // The error body is read within the attempt's time limit too: an upstream that stalls
          // after its 503 headers must not hold the request past it.
          const chunks: Buffer[] = [];
          let size = 0;
          up.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size <= RELAYED_ERROR_BYTES) chunks.push(chunk);
          });
          up.on('end', () => {
            clearTimeout(timer);
            reject(new UpstreamStatusError(status, size <= RELAYED_ERROR_BYTES ? { headers: up.headers, body: Buffer.concat(chunks) } : undefined));
          });
          up.on('error', () => {
            clearTimeout(timer);
            reject(timedOut ? new TaskCancelledError(`no answer from ${upstream.host} in time`) : new UpstreamStatusError(status));
          });
        } else {
          clearTimeout(timer);
          resolve(up);
        }
      });
      // A streamed body is read from the client only once the connection is made, so that a
      // refused connection leaves it whole for the next instance.
      const sendBody = () => {
        connected = true;
        if (idempotent || replayBody) return;
        let seen = 0;
        const counter = new Transform({
          transform(chunk: Buffer, _enc, done) {
            seen += chunk.length;
            if (seen > o.bodyLimit) done(new BodyTooLargeError(`request bodies here are limited to ${o.bodyLimit} bytes`));
            else done(null, chunk);
          },
        });
        counter.on('error', (err) => {
          out.destroy();
          drainRequest(req);
          reject(err);
        });
        req.pipe(counter).pipe(out);
      };
      out.once('socket', (socket) => {
        if (!socket.connecting) return sendBody(); // a kept-alive socket
        const timer = setTimeout(() => out.destroy(new Error(`connection to ${upstream.host} not made within ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS);
        socket.once('connect', () => {
          clearTimeout(timer);
          sendBody();
        });
        socket.once('close', () => clearTimeout(timer));
      });
      // Held bodies are queued now; the socket sends them once connected.
      if (idempotent || replayBody) out.end(replayBody);
    });

  /** One attempt: the next instance that can be tried, through its breaker; on to another while nothing was sent. */
  const toSomeInstance = async (): Promise<http.IncomingMessage> => {
    let tried: Set<UpstreamInstance> | undefined; // made on the first instance that sent nothing (rare)
    let last: unknown;
    for (;;) {
      const instance = pool.pick(tried);
      if (!instance) throw pool.allDown() || last === undefined ? new NoInstanceError(pool) : last;
      const breaker = o.policies.breakerFor(instance);
      try {
        return await breaker.execute(() => attempt(instance, retried ? o.policies.attemptTimeoutMs : undefined));
      } catch (err) {
        if (err instanceof NotSentError) pool.markDown(instance, (err.reason as NodeJS.ErrnoException).code ?? err.message);
        else if (!(err instanceof BrokenCircuitError)) throw err; // an open breaker sent nothing either
        last = err;
        (tried ??= new Set()).add(instance);
      }
    }
  };

  let up: http.IncomingMessage;
  try {
    up = await (retried ? o.policies.retry.execute(toSomeInstance) : toSomeInstance());
  } catch (err) {
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    const requestId = extraHeaders['x-request-id'];
    if (err instanceof BodyTooLargeError) {
      sendJson(res, 413, errorBody('payload_too_large', err.message, requestId));
    } else if (err instanceof NoInstanceError) {
      sendJson(res, 503, errorBody('upstream_unavailable', `${err.message}; retry shortly`, requestId), { 'Retry-After': '2' });
    } else if (err instanceof BrokenCircuitError) {
      sendJson(res, 503, errorBody('upstream_unavailable', `${pool.name} is failing; the gateway stopped sending it requests for a moment`, requestId), { 'Retry-After': '10' });
    } else if (err instanceof UpstreamStatusError && err.answer) {
      // The retries are spent: the last instance's own answer goes back as it was.
      for (const [k, v] of Object.entries(err.answer.headers)) if (!DROP.has(k) && v !== undefined) res.setHeader(k, v);
      res.statusCode = err.status;
      res.end(err.answer.body);
    } else if (err instanceof UpstreamStatusError) {
      sendJson(res, err.status, errorBody('bad_gateway', `upstream answered ${err.status} after retries`, requestId));
    } else if (err instanceof TaskCancelledError) {
      sendJson(res, 504, errorBody('gateway_timeout', 'the upstream did not answer in time', requestId));
    } else {
      sendJson(res, 502, errorBody('bad_gateway', `upstream unavailable: ${(err as Error).message}`, requestId));
    }
    return;
  }
  const resHeaders: Record<string, string | string[]> = {};
  for (const k in up.headers) {
    const v = up.headers[k];
    if (v !== undefined && !DROP.has(k)) resHeaders[k] = v;
  }
  // A pack-cache hit the git-server named instead of sending: streamed from the shared folder here.
  const packFile = o.packFiles && extraHeaders[PACK_VOLUME_HEADER] ? up.headers[PACK_FILE_HEADER] : undefined;
  if (typeof packFile === 'string') {
    up.resume(); // its body is empty; reading it frees the kept-alive socket
    await o.packFiles!.serve(packFile, up.statusCode ?? 502, resHeaders, res, extraHeaders['x-request-id']);
    return;
  }
  res.writeHead(up.statusCode ?? 502, resHeaders);
  // The upstream answered before reading the whole body (a refusal): the rest is not sent on.
  up.once('end', () => drainRequest(req));
  up.pipe(res);
  up.on('error', () => res.destroy());
}
