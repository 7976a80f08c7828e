import type { NextFunction, Request, Response, RequestHandler, ErrorRequestHandler } from 'express';
import { performance } from 'node:perf_hooks';
import { METRICS_CONTENT_TYPE, metricsText, startProcessMetrics } from './metrics';
import { AuthenticationError } from './errors';
import { dbUnavailable } from './db-leader';
import { shardFenced } from './shard-fence';
import { errorBody, httpErrorOf } from './http-errors';
import { IDENTITY_HEADER, verifyIdentity } from './internal-identity';
import type { Principal } from './principal';
import type { Logger } from './logger';
import { withLogContext, type LogFields } from './log-context';

declare module 'express-serve-static-core' {
  interface Request {
    /** Set by `requireIdentity`: the caller as the gateway vouched for it (null = anonymous). */
    principal?: Principal | null;
    requestId?: string;
    /** Set by `requestLogger`: the process logger as a child carrying this request's requestId and traceId. */
    log?: Logger;
    /** Set by `requestLogger`: what every line logged while handling this request carries (core/log-context.ts). */
    logFields?: LogFields;
  }
}

/** W3C `traceparent` (version 00): its 32-hex trace id, or undefined when absent or malformed. */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  const m = traceparent ? /^00-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/.exec(traceparent.trim()) : null;
  return m ? m[1] : undefined;
}

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Upstream middleware, after `requireIdentity`: gives the request its own child logger, so every
 * line logged for it carries the request id and trace id the gateway sent (and the caller's tenant), and logs one line when
 * the answer is done: at info for writes and failures, at debug for successful reads (the hot path).
 */
export function requestLogger(log: Logger): RequestHandler {
  const debug = log.isLevelEnabled('debug');
  return (req, res, next) => {
    // The caller's tenant too (ADR 0028), so a tenant's requests can be picked out of the logs.
    const tenant = req.principal?.tenantName;
    const requestLog = log.child({ requestId: req.requestId ?? null, traceId: traceIdOf(req.header('traceparent')) ?? null, ...(tenant ? { tenant } : {}) });
    req.log = requestLog;
    // Every line logged while handling it, by any logger: the same fields, and the repository once known.
    const fields: LogFields = { requestId: req.requestId, ...(tenant ? { tenant } : {}) };
    req.logFields = fields;
    const started = performance.now();
    res.on('finish', () => {
      const failed = res.statusCode >= 500;
      if (!failed && READS.has(req.method) && !debug) return;
      const line = { method: req.method, path: req.originalUrl.split('?')[0], status: res.statusCode, ms: Math.round(performance.now() - started) };
      // The socket's event, outside the request's context: entered again, so this line names the repository too.
      withLogContext(fields, () => {
        if (failed) requestLog.warn(line, 'request failed');
        else if (READS.has(req.method)) requestLog.debug(line, 'request');
        else requestLog.info(line, 'request');
      }, () => req.params);
    });
    withLogContext(fields, next, () => req.params);
  };
}

/** Upstream middleware: accept only requests carrying a valid identity signed by the gateway. */
export function requireIdentity(secret: string): RequestHandler {
  return (req, _res, next) => {
    verifyIdentity(secret, req.header(IDENTITY_HEADER))
      .then((identity) => {
        req.principal = identity.principal;
        req.requestId = identity.requestId || req.header('x-request-id') || undefined;
        next();
      })
      .catch((err: Error) => next(new AuthenticationError(err.message, { cause: err })));
  };
}

// The error body lives with the mapper (core/http-errors.ts); re-exported for this module's users.
export { errorBody };

/** Where the api's and git-server's errors become HTTP answers (the mapping: core/http-errors.ts). Unknown errors are 500s, logged with their stack. */
export function errorMiddleware(log: Logger): ErrorRequestHandler {
  return (thrown: unknown, req: Request, res: Response, _next: NextFunction) => {
    // A database restarting or failing over, or a write to a shard being moved (its fence, ADR
    // 0026), is a retry-shortly (503 + Retry-After), never a 500.
    const err = shardFenced(thrown) ?? dbUnavailable(thrown) ?? thrown;
    const requestId = req.requestId ?? req.header('x-request-id');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const mapped = httpErrorOf(err);
    if (mapped) {
      res.set(mapped.headers).status(mapped.status).json(errorBody(mapped.code, mapped.message, requestId));
      return;
    }
    const refused = bodyRefusal(err as BodyParserError, req.header('content-encoding'));
    if (refused) {
      res.status(refused.status).json(errorBody(refused.code, refused.message, requestId));
      return;
    }
    (req.log ?? log).error({ err, requestId }, 'unhandled error');
    res.status(500).json(errorBody('internal', 'internal error', requestId));
  };
}

/** What body-parser (express.json, express.urlencoded) attaches to the errors it passes on. */
interface BodyParserError {
  status?: number;
  type?: string;
  message?: string;
  limit?: number;
}

/**
 * body-parser's refusals as CONTRACT answers: one of our stable codes (never body-parser's internal
 * `type`, e.g. `entity.parse.failed`) and a message that says what is wrong with the body. Undefined
 * for anything that is not a client error.
 */
export function bodyRefusal(e: BodyParserError | undefined, contentEncoding?: string): { status: number; code: string; message: string } | undefined {
  if (typeof e?.status !== 'number' || e.status < 400 || e.status >= 500) return undefined;
  switch (e.type) {
    case 'entity.parse.failed':
      // (The api tells valid non-object JSON apart first: api/validation.ts jsonBodyErrors.)
      return { status: 400, code: 'invalid_input', message: `the request body is not valid JSON: ${e.message ?? 'it does not parse'}` };
    case 'entity.too.large':
      return { status: 413, code: 'payload_too_large', message: e.limit === undefined ? 'the request body is too large' : `the request body is larger than ${e.limit} bytes` };
    case 'charset.unsupported':
      return { status: 415, code: 'unsupported_media_type', message: `${e.message}; JSON bodies are UTF-8` };
    case 'encoding.unsupported':
      return { status: 415, code: 'unsupported_media_type', message: `${e.message}; send the body as is, or as gzip, deflate or br` };
    case 'request.aborted':
      return { status: 400, code: 'bad_request', message: 'the request body ended before it was complete' };
    case 'request.size.invalid':
      return { status: 400, code: 'bad_request', message: 'the request body is not as long as its Content-Length says' };
  }
  // A decompression stream's error (zlib's own message, no type): the body is not what its encoding says.
  if (e.type === undefined && contentEncoding && contentEncoding.toLowerCase() !== 'identity') {
    return { status: 400, code: 'invalid_input', message: `the request body could not be decoded as Content-Encoding ${contentEncoding}: ${e.message ?? 'corrupt data'}` };
  }
  return { status: e.status, code: 'bad_request', message: e.message ?? 'bad request' };
}

/**
 * Wraps an async handler so a rejected promise reaches the error middleware; it runs in the
 * request's log context (requestLogger's), entered again here because a body parser's stream
 * events hand the request on outside it, and with the route's parameters naming the repository.
 */
export function route(fn: (req: Request, res: Response) => Promise<void>): RequestHandler {
  return (req, res, next) => {
    const run = () => fn(req, res).catch(next);
    if (req.logFields) void withLogContext(req.logFields, run, () => req.params);
    else void run();
  };
}

/** Named dependency checks: each rejects (or outlasts its time) when its part is not reachable. */
export type Checks = Record<string, () => Promise<unknown>>;

/** How long one check may take before it counts as failing. */
const CHECK_TIMEOUT_MS = 2000;

/**
 * Runs `checks` at once, each bounded by CHECK_TIMEOUT_MS: the names that failed, and why (the
 * error's message, cut short; for an upstream's readiness, the dependencies it names).
 */
export async function runChecks(checks: Checks): Promise<{ failing: string[]; reasons: Record<string, string> }> {
  const names = Object.keys(checks);
  const results = await Promise.all(
    names.map((n) =>
      Promise.race([Promise.resolve().then(() => checks[n]()), timeout(CHECK_TIMEOUT_MS)]).then(
        () => null,
        (err: unknown) => [n, String((err as Error)?.message ?? err).slice(0, 200)] as const,
      ),
    ),
  );
  const failed = results.filter((r): r is readonly [string, string] => r !== null);
  return { failing: failed.map(([n]) => n), reasons: Object.fromEntries(failed) };
}

/** The `/readyz` answer: 200 `{status: 'ready'}`, else 503 naming each failing dependency and why. */
export async function answerReadiness(res: Response, checks: Checks, requestId?: string): Promise<void> {
  const { failing, reasons } = await runChecks(checks);
  if (failing.length === 0) res.json({ status: 'ready', checked: Object.keys(checks) });
  else res.status(503).json({ status: 'not ready', failing, reasons, ...(requestId ? { requestId } : {}) });
}

/**
 * `/healthz` (checks named parts), `/readyz` (readiness: `ready`, default the same checks; every
 * dependency the process needs to do its work, ADR 0028) and `/metrics` (prom-client default
 * registry with the process metrics, plus what `extraMetrics` adds) for every process.
 */
export function healthAndMetrics(checks: Checks, extraMetrics?: () => Promise<string>, ready: Checks = checks): RequestHandler {
  startProcessMetrics();
  return (req, res, next) => {
    if (req.path === '/metrics' && req.method === 'GET') {
      metricsText(extraMetrics)
        .then((text) => res.type(METRICS_CONTENT_TYPE).send(text))
        .catch(next);
      return;
    }
    if (req.path === '/readyz' && req.method === 'GET') {
      answerReadiness(res, ready).catch(next);
      return;
    }
    if (req.path !== '/healthz' || req.method !== 'GET') {
      next();
      return;
    }
    runChecks(checks).then(({ failing }) => {
      if (failing.length === 0) res.json({ status: 'ok' });
      else res.status(503).json({ status: 'unavailable', failing });
    }, next);
  };
}

function timeout(ms: number): Promise<never> {
  return new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms).unref());
}
