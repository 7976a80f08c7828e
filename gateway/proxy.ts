import http from 'node:http';
import { Transform } from 'node:stream';
import type { Request, Response } from 'express';
import { BrokenCircuitError, ConsecutiveBreaker, ExponentialBackoff, TaskCancelledError, circuitBreaker, handleWhen, retry, timeout, TimeoutStrategy, wrap, type IPolicy } from 'cockatiel';
import { errorBody } from '../core/http';
import { readWholeBody, replayablePost } from './idempotency';

/** Hop-by-hop headers (RFC 9110 §7.6.1) and our internal ones never cross the gateway as sent. */
const DROP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'host', 'x-dotgit-identity', 'x-dotgit-service']);

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

/** Thrown (inside the retry policy) when an idempotent request got 502/503/504 from the upstream. */
class UpstreamStatusError extends Error {
  override readonly name = 'UpstreamStatusError';
  constructor(readonly status: number) {
    super(`upstream answered ${status}`);
  }
}

/** Thrown when the client went away: not the upstream's fault, so neither retried nor counted by the breaker. */
class ClientGoneError extends Error {
  override readonly name = 'ClientGoneError';
}

/** Only upstream trouble counts: a client that left or sent too much says nothing about the upstream. */
const upstreamFailures = handleWhen((err) => !(err instanceof ClientGoneError) && !(err instanceof BodyTooLargeError));

/** Thrown when a streamed request body passes its limit. */
class BodyTooLargeError extends Error {
  override readonly name = 'BodyTooLargeError';
}

export interface UpstreamPolicies {
  /**
   * Bodiless idempotent requests and POSTs with an Idempotency-Key (body held in memory): timeout,
   * then up to 3 retries with exponential backoff and jitter, each attempt through the breaker.
   */
  idempotent: IPolicy;
  /** Everything else (pushes, unkeyed POSTs, streamed bodies): through the breaker only, never retried. */
  once: IPolicy;
  /** Upstream hits by attempt, for tests and metrics. */
  attempts: number;
}

/**
 * Resilience for one upstream (cockatiel): a circuit breaker that opens after 5 consecutive
 * failures (connection errors, 502-504 on idempotent requests) and half-opens after `halfOpenAfterMs`.
 */
export function upstreamPolicies(o: { halfOpenAfterMs?: number; retryInitialDelayMs?: number; attemptTimeoutMs?: number } = {}): UpstreamPolicies {
  const breaker = circuitBreaker(upstreamFailures, { halfOpenAfter: o.halfOpenAfterMs ?? 10_000, breaker: new ConsecutiveBreaker(5) });
  const retries = retry(upstreamFailures, { maxAttempts: 3, backoff: new ExponentialBackoff({ initialDelay: o.retryInitialDelayMs ?? 100, maxDelay: 2000 }) });
  // Bounds the wait for response headers only: aborting on return would cut the streamed answer.
  const perAttempt = timeout(o.attemptTimeoutMs ?? 30_000, { strategy: TimeoutStrategy.Aggressive, abortOnReturn: false });
  return { idempotent: wrap(retries, breaker, perAttempt), once: breaker, attempts: 0 };
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
 * Streams the request to `upstream` and the answer back, without buffering either (git packs can be
 * large); `extraHeaders` carry the request id, traceparent and signed identity. Bodiless idempotent
 * requests are retried, and so are POSTs with an Idempotency-Key whose small body is held for the
 * next attempt; a body past `bodyLimit` is cut off with 413.
 */
export async function forward(
  req: Request,
  res: Response,
  upstream: URL,
  extraHeaders: Record<string, string>,
  o: { policies: UpstreamPolicies; bodyLimit: number },
): Promise<void> {
  const headers: http.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(req.headers)) if (!DROP.has(k) && v !== undefined) headers[k] = v;
  Object.assign(headers, extraHeaders);
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

  const attempt = ({ signal }: { signal: AbortSignal }) =>
    new Promise<http.IncomingMessage>((resolve, reject) => {
      if (clientGone) {
        reject(new ClientGoneError('the client went away'));
        return;
      }
      o.policies.attempts++;
      const out = http.request({ agent, hostname: upstream.hostname, port: upstream.port, method: req.method, path: req.originalUrl, headers, signal });
      current = out;
      out.on('error', (err) => reject(clientGone ? new ClientGoneError('the client went away') : err));
      out.on('response', (up) => {
        const status = up.statusCode ?? 502;
        if (retried && status >= 502 && status <= 504) {
          up.resume();
          reject(new UpstreamStatusError(status));
        } else resolve(up);
      });
      if (idempotent || replayBody) {
        out.end(replayBody);
        return;
      }
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
    });

  let up: http.IncomingMessage;
  try {
    up = await (retried ? o.policies.idempotent : o.policies.once).execute(attempt);
  } catch (err) {
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    const requestId = extraHeaders['x-request-id'];
    if (err instanceof BodyTooLargeError) {
      res.status(413).json(errorBody('payload_too_large', err.message, requestId));
    } else if (err instanceof BrokenCircuitError) {
      res.setHeader('Retry-After', '10');
      res.status(503).json(errorBody('upstream_unavailable', `${upstream.host} is failing; the gateway stopped sending it requests for a moment`, requestId));
    } else if (err instanceof UpstreamStatusError) {
      res.status(err.status).json(errorBody('bad_gateway', `upstream answered ${err.status} after retries`, requestId));
    } else if (err instanceof TaskCancelledError) {
      res.status(504).json(errorBody('gateway_timeout', 'the upstream did not answer in time', requestId));
    } else {
      res.status(502).json(errorBody('bad_gateway', `upstream unavailable: ${(err as Error).message}`, requestId));
    }
    return;
  }
  const resHeaders: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(up.headers)) if (!DROP.has(k) && v !== undefined) resHeaders[k] = v;
  res.writeHead(up.statusCode ?? 502, resHeaders);
  // The upstream answered before reading the whole body (a refusal): the rest is not sent on.
  up.once('end', () => drainRequest(req));
  up.pipe(res);
  up.on('error', () => res.destroy());
}
