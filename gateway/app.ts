import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Db } from '../core/db';
import { AuthenticationError, DotgitError } from '../core/errors';
import { errorBody, httpErrorOf, httpStatusOf } from '../core/http-errors';
import { METRICS_CONTENT_TYPE, metricsText, requestTimer } from '../core/metrics';
import { answerReadiness } from '../core/http';
import { startServerSpan } from '../core/tracing';
import { IDENTITY_HEADER, signIdentity } from '../core/internal-identity';
import type { Logger } from '../core/logger';
import { repoOfPath, type LogFields } from '../core/log-context';
import type { Principal } from '../core/principal';
import { revokedTokenKey } from '../core/token-revocation';
import { hashToken } from '../core/tokens';
import { forward, upstreamPolicies, type UpstreamPolicies } from './proxy';
import { nextTraceparent } from './trace-context';
import { DEFAULT_WAF_LIMITS, bodyLimitFor, edgeChecks, pathProblem, type WafLimits } from './waf';
import { asEdgeRequest, pathOf, queryOf, sendJson, type EdgeRequest } from './edge-request';
import { proxyUpgrade } from './upgrade';
import { requestIdFrom } from './request-id';
import { upstreamFor } from './upstream-for';
import { pickUpstream, routingTable, type UpstreamSpec } from './routing';
import { routeClass, subjectFor, type RateDecision, type RateLimiter } from './rate-limit';
import { credentialsFrom, lookupToken, looksLikeJwt, MAX_TOKEN_LENGTH, principalForCertificate, principalForJwt } from './token-auth';
import { TokenCache } from './token-cache';
import { clientCertUser } from './tls';
import { checkCsrf, consoleSessionRouter, isConsoleRequest, lookupSession, sessionIdFrom } from './console-session';
import { consoleStaticRouter } from './console-static';
import type { JwtVerifier } from './jwt/jwt-verifier';
import { PACK_VOLUME_HEADER } from '../core/pack-handoff';
import type { PackFiles } from './pack-files';
import type { UpstreamPool } from '../core/upstream-pool';

export interface GatewayOptions {
  db: Db;
  log: Logger;
  internalSecret: string;
  /**
   * The built-in upstreams: pools of instances (balanced round robin, taken out while unreachable;
   * main.ts builds them from `DOTGIT_API_UPSTREAMS` / `DOTGIT_GIT_UPSTREAMS` and starts their
   * probes), or one fixed URL each.
   */
  upstreams: { api: UpstreamSpec; git: UpstreamSpec };
  /** Extra routes (`DOTGIT_ROUTES_FILE`): path prefixes and header rules to other upstreams. */
  routesFile?: string;
  /** Edge limits (body sizes per route kind, header count). Default DEFAULT_WAF_LIMITS. */
  waf?: WafLimits;
  /** Resilience policies per upstream name (breakers per instance); default `upstreamPolicies()` for each. */
  policies?: Record<string, UpstreamPolicies>;
  /** Verifies bearer JWTs (ours and configured issuers'); without it only API tokens are accepted. */
  jwt?: JwtVerifier;
  /** Our issuer (`POST /oauth/token`, `/.well-known/jwks.json`); optional. */
  issuer?: express.Router;
  /** Client certificates (on the HTTPS listener): `required` refuses requests without a valid one. Default: not used. */
  clientCert?: 'optional' | 'required';
  /** Rate limits (sliding window + leaky bucket in Redis); without it nothing is limited. */
  limiter?: RateLimiter;
  /**
   * How long an API token lookup is kept in memory (`DOTGIT_TOKEN_CACHE_TTL`); default 60 s, 0 = off.
   * Used only with a limiter, whose round trip also checks the token's revocation tombstone.
   */
  tokenCacheTtlMs?: number;
  /** Named checks behind `/healthz`; each rejects when its part is down. */
  healthChecks: Record<string, () => Promise<unknown>>;
  /** What /healthz says besides the checks: the database's primary and each standby's lag (ADR 0027). */
  healthDetails?: () => Promise<Record<string, unknown>>;
  /**
   * The web console (ADR 0032): its built files (`console/dist`), served at `/`, and its sessions'
   * lifetime. Without it only the API and git are served.
   */
  console?: { distDir: string; sessionTtlSeconds: number; temporalUiUrl?: string };
  /**
   * Behind `/readyz` (ADR 0028): the gateway's own dependencies and each upstream's readiness,
   * rejecting with what that upstream names as failing; default `healthChecks`.
   */
  readyChecks?: Record<string, () => Promise<unknown>>;
  /**
   * The git-server's pack cache as this process can read it (ADR 0040): cached fetch answers are
   * streamed from there instead of relayed. Without it every answer is relayed.
   */
  packFiles?: PackFiles;
}

/** The route label of a gateway request: its rate-limit class (api-read, git-push, …), else its own endpoint or `other`. */
function gatewayRoute(req: EdgeRequest): string {
  const cls = routeClass(req.method, req.path, queryOf(req.url));
  if (cls) return cls;
  if (req.path === '/healthz' || req.path === '/readyz' || req.path === '/metrics' || req.path === '/oauth/token' || req.path === '/.well-known/jwks.json' || req.path === '/.well-known/openid-configuration') return req.path;
  return 'other';
}

/**
 * What the gateway's lines about a request name (issue 14 item 5): its id, the caller's tenant once
 * authenticated, the repository its path names. Written into the line itself rather than through
 * the log context (core/log-context.ts): the gateway writes a line for few requests, and entering an
 * AsyncLocalStorage context per request would turn on async hooks for every promise on its hot path.
 */
function requestLogFields(req: EdgeRequest): LogFields {
  const fields: LogFields = { requestId: req.requestId };
  const tenant = req.principal?.tenantName;
  if (tenant) fields.tenant = tenant;
  const repo = repoOfPath(req.path);
  if (repo) fields.repo = repo;
  return fields;
}

/** The brute-force gate refused to check a credential: answered with the decision (429, or 503 failing closed). */
class GateRefused extends Error {
  constructor(readonly decision: RateDecision) {
    super(decision.message);
  }
}

/**
 * The gateway as a request listener, with its upgrade handler (`server.on('upgrade', gateway.onUpgrade)`).
 * Requests for an upstream (the API, git) are forwarded without entering express (ADR 0048); the
 * gateway's own endpoints (health, metrics, the issuer, the console) are an express app behind it.
 */
export interface Gateway extends http.RequestListener {
  onUpgrade: (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;
}

export function createGatewayApp(o: GatewayOptions): Gateway {
  const app = express();
  app.disable('x-powered-by');
  const wafLimits = o.waf ?? DEFAULT_WAF_LIMITS;
  const table = routingTable(o.upstreams, o.routesFile);
  // Retries per upstream, a breaker per instance; git answers can take minutes to start (pack generation).
  const policies: Record<string, UpstreamPolicies> = { ...o.policies };
  const policyFor = (name: string) => (policies[name] ??= upstreamPolicies(name === 'git' ? { name, attemptTimeoutMs: 600_000 } : { name }));
  const tokenCache = o.limiter ? new TokenCache(o.tokenCacheTtlMs ?? 60_000) : undefined;
  const debug = o.log.isLevelEnabled('debug');

  const passesEdgeChecks = edgeChecks(wafLimits);
  const timed = requestTimer('gateway', gatewayRoute);
  /** What every request gets first, forwarded or not: timing, its request id, the edge checks (false: answered). */
  const admit = (req: EdgeRequest, res: http.ServerResponse): boolean => {
    timed(req, res);
    const id = requestIdFrom(req.header('x-request-id'));
    req.requestId = id;
    res.setHeader('X-Request-Id', id);
    return passesEdgeChecks(req, res);
  };

  const gateway = ((req, res) => {
    const path = pathOf(req.url ?? '/');
    if (!upstreamFor(path)) {
      app(req, res);
      return;
    }
    const edge = asEdgeRequest(req, path);
    // What express's router did for its middleware: a throw is answered, never left to crash the process.
    try {
      if (!admit(edge, res)) return;
      const target = pickUpstream(table, edge);
      if (target) proxyRequest(edge, res, target);
      else sendJson(res, 404, errorBody('not_found', `no route for ${path}`, edge.requestId));
    } catch (err) {
      answerError(err, edge, res);
    }
  }) as Gateway;

  // The gateway's own endpoints: the same timing, request id and edge checks first.
  app.use((req, res, next) => {
    if (admit(req, res)) next();
  });

  function proxyRequest(req: EdgeRequest, res: http.ServerResponse, target: { name: string; pool: UpstreamPool }): void {
    const authorization = req.header('authorization');
    // The raw query: express's parsed req.query is built on first access, a cost only git paths need.
    const query = queryOf(req.url);
    // The console's session cookie stands in for a token on API requests only (never git, never upgrades).
    const sessionId = o.console && !authorization && target.name === 'api' ? sessionIdFrom(req.header('cookie')) : undefined;
    (sessionId ? authenticateSession(req, sessionId) : authenticate(authorization, req.socket, tokenCache, req.ip))
      .then(async (auth) => {
        let principal = auth.principal;
        // A push always needs credentials: git's credential-less first request is asked for them
        // here, spending nothing from the address's push limits (git-server would answer the same).
        if (!principal && routeClass(req.method, req.path, query) === 'git-push') throw new AuthenticationError('authentication required');
        if (o.limiter) {
          // JWTs of outside issuers and certificates have no token id: they are limited per user.
          const subject = principal ? (principal.tokenId ? `token:${principal.tokenId}` : `user:${principal.userId}`) : subjectFor(null, req.ip);
          const decision = await o.limiter.check({
            method: req.method,
            path: req.path,
            query,
            subject,
            tenant: principal?.tenantName,
            revocationKey: principal?.tokenId ? revokedTokenKey(principal.tokenId) : undefined,
            deferCount: !principal,
          });
          if (decision.revoked) {
            if (auth.tokenHash) tokenCache?.delete(auth.tokenHash.toString('base64'));
            throw new AuthenticationError(auth.kind === 'jwt' ? 'invalid or expired JWT' : 'invalid, expired or revoked token');
          }
          // No answer from Redis (failing open): a cached token's revocation is unknown, so Postgres decides.
          if (decision.unchecked && auth.cached && auth.tokenHash) principal = (await lookupToken(o.db, auth.tokenHash)).principal;
          if (!decision.allowed) {
            refuse(res, decision, req.requestId);
            return;
          }
          for (const k in decision.headers) res.setHeader(k, decision.headers[k]);
          // Anonymous: counted against the address unless the answer asks for credentials (git's probe).
          const count = decision.count;
          if (count) res.once('close', () => void (res.statusCode === 401 ? undefined : count()));
        }
        req.principal = principal; // for the lines written about this request (requestLogFields)
        const identity = await signIdentity(o.internalSecret, principal, req.requestId!);
        // Traced: this hop is a span and the upstream its child; otherwise the id just passes on.
        const span = startServerSpan('gateway', req.header('traceparent'), { 'http.request.method': req.method });
        if (span) res.once('close', () => span.end(res.statusCode, `gateway ${gatewayRoute(req)}`));
        const traceparent = span?.traceparent ?? nextTraceparent(req.header('traceparent'));
        // Per-request lines only at debug: at info they cost a measurable share of the hop's CPU.
        if (debug) o.log.debug({ ...requestLogFields(req), traceparent, method: req.method, path: req.path, upstream: target.name, user: principal?.username }, 'forward');
        const headers: Record<string, string> = { 'x-request-id': req.requestId!, traceparent, [IDENTITY_HEADER]: identity };
        // Fetches may be answered with a pack-cache file this process reads itself (ADR 0040).
        const volume = target.name === 'git' && req.method === 'POST' && req.path.endsWith('/git-upload-pack') ? o.packFiles?.volumeId() : undefined;
        if (volume) headers[PACK_VOLUME_HEADER] = volume;
        await forward(req, res, target.pool, headers, {
          policies: policyFor(target.name),
          bodyLimit: bodyLimitFor(req.path, req.method, wafLimits),
          packFiles: volume ? o.packFiles : undefined,
        });
      })
      .catch(async (err: unknown) => {
        if (err instanceof GateRefused) return refuse(res, err.decision, req.requestId);
        // Brute-force protection counts every refused credential (not anonymous requests).
        if (err instanceof AuthenticationError && authorization !== undefined) await o.limiter?.recordAuthFailure(req.ip);
        answerError(err, req, res);
      });
  }

  function refuse(res: http.ServerResponse, decision: RateDecision, requestId: string | undefined): void {
    sendJson(res, decision.status ?? 429, errorBody(decision.status === 503 ? 'unavailable' : 'rate_limited', decision.message ?? 'rate limited', requestId), decision.headers);
  }

  app.get('/metrics', (_req, res, next) => {
    metricsText().then((text) => res.type(METRICS_CONTENT_TYPE).send(text), next);
  });

  app.get('/healthz', (req, res) => {
    const names = Object.keys(o.healthChecks);
    // Details are best effort (2 s at most): they never fail the check.
    const details = o.healthDetails
      ? Promise.race([o.healthDetails(), new Promise<Record<string, unknown>>((r) => setTimeout(() => r({}), 2000).unref())]).catch(() => ({}))
      : Promise.resolve({});
    void Promise.all([Promise.all(names.map((n) => o.healthChecks[n]().then(() => null, () => n))), details]).then(([failed, extra]) => {
      const bad = failed.filter((f): f is string => f !== null);
      if (bad.length === 0) res.json({ status: 'ok', ...extra });
      else res.status(503).json({ status: 'unavailable', failing: bad, ...extra, requestId: req.requestId });
    });
  });

  app.get('/readyz', (req, res, next) => {
    answerReadiness(res, o.readyChecks ?? o.healthChecks, req.requestId).catch(next);
  });

  if (o.issuer) app.use(o.issuer);
  if (o.console) {
    app.use(consoleSessionRouter({ db: o.db, ttlSeconds: o.console.sessionTtlSeconds, temporalUiUrl: o.console.temporalUiUrl, limiter: o.limiter }));
    app.use(consoleStaticRouter(o.console.distDir));
  }

  app.use((req, res) => {
    res.status(404).json(errorBody('not_found', `no route for ${req.path}`, req.requestId));
  });

  interface Authenticated {
    principal: Principal | null;
    kind: 'none' | 'token' | 'jwt' | 'certificate' | 'session';
    /** SHA-256 of an API token: its cache key, and what Postgres is asked with. */
    tokenHash?: Buffer;
    /** The principal came from the token cache (not from Postgres just now). */
    cached?: boolean;
  }

  /**
   * Before a credential is checked (not one the cache already vouches for): refused while the
   * client address has too many failed authentications.
   */
  async function gate(address: string | undefined): Promise<void> {
    const decision = await o.limiter?.authFailureGate(address);
    if (decision && !decision.allowed) throw new GateRefused(decision);
  }

  /**
   * `cache`: only where the caller then runs the limiter, whose round trip checks revocation.
   * `address`: the client's, for brute-force protection.
   */
  async function authenticate(authorization: string | undefined, socket: Socket, cache: TokenCache | undefined, address: string | undefined): Promise<Authenticated> {
    const token = credentialsFrom(authorization);
    if (o.clientCert && (socket as { encrypted?: boolean }).encrypted) {
      const cert = clientCertUser(socket);
      if (cert.presented && !cert.authorized) throw new AuthenticationError('the client certificate is not signed by the configured CA');
      if (!cert.presented && o.clientCert === 'required') throw new AuthenticationError('a client certificate is required');
      // A verified certificate identifies its subject (CN = user name) when no token is sent.
      if (cert.authorized && cert.username && !token) return { principal: await principalForCertificate(o.db, cert.username), kind: 'certificate' };
    }
    if (!token) return { principal: null, kind: 'none' };
    if (looksLikeJwt(token)) {
      await gate(address);
      if (!o.jwt) throw new AuthenticationError('JWTs are not accepted here');
      return { principal: await principalForJwt(o.db, await o.jwt.verify(token)), kind: 'jwt' };
    }
    if (token.length > MAX_TOKEN_LENGTH) throw new AuthenticationError('invalid token');
    const tokenHash = hashToken(token);
    const key = tokenHash.toString('base64');
    const hit = cache?.get(key);
    if (hit) return { principal: hit, kind: 'token', tokenHash, cached: true };
    await gate(address);
    const found = await lookupToken(o.db, tokenHash);
    cache?.set(key, found.principal, found.expiresAt);
    return { principal: found.principal, kind: 'token', tokenHash };
  }

  /** A console session's principal; its writes must pass the CSRF checks (403 otherwise). */
  async function authenticateSession(req: EdgeRequest, id: string): Promise<Authenticated> {
    const session = await lookupSession(o.db, id);
    checkCsrf(req, session.csrf);
    return { principal: session.principal, kind: 'session' };
  }

  /** WebSocket (and other) upgrades: the same path checks, routing and authentication, then a byte pipe. */
  const onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const requestId = requestIdFrom(req.headers['x-request-id'] as string | undefined);
    const refuse = (status: number, message: string) => {
      const body = JSON.stringify(errorBody(status === 401 ? 'unauthenticated' : 'refused', message, requestId));
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    };
    const problem = pathProblem(req.url ?? '/');
    const path = (req.url ?? '/').split('?')[0];
    const fake = { path, header: (name: string) => req.headers[name.toLowerCase()] as string | undefined };
    const target = problem ? undefined : upstreamFor(path) ? pickUpstream(table, fake) : undefined;
    if (!target) return refuse(problem ? 400 : 404, problem ?? `no route for ${path}`);
    // Upgrades are not rate-limited, so nothing would check a cached token's revocation: Postgres decides.
    const authorization = fake.header('authorization');
    authenticate(authorization, req.socket, undefined, req.socket.remoteAddress)
      .then(async ({ principal }) => {
        const identity = await signIdentity(o.internalSecret, principal, requestId);
        proxyUpgrade(req, socket, head, target.pool, { 'x-request-id': requestId, traceparent: nextTraceparent(fake.header('traceparent')), [IDENTITY_HEADER]: identity });
      })
      .catch(async (err) => {
        if (err instanceof GateRefused) return refuse(err.decision.status ?? 429, err.decision.message ?? 'rate limited');
        if (err instanceof AuthenticationError && authorization !== undefined) await o.limiter?.recordAuthFailure(req.socket.remoteAddress);
        refuse(httpStatusOf(err), err instanceof DotgitError ? err.message : 'internal error');
      });
  };
  gateway.onUpgrade = onUpgrade;

  /** The one mapping of errors to answers, for forwarded requests and the gateway's own endpoints. */
  function answerError(err: unknown, req: EdgeRequest, res: http.ServerResponse): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const mapped = httpErrorOf(err);
    // No Basic challenge to the console's own requests: a browser would open its password dialog.
    if (mapped && o.console && isConsoleRequest(req)) delete mapped.headers['WWW-Authenticate'];
    if (mapped) {
      sendJson(res, mapped.status, errorBody(mapped.code, mapped.message, req.requestId), mapped.headers);
      return;
    }
    o.log.error({ err, ...requestLogFields(req) }, 'gateway error');
    sendJson(res, 500, errorBody('internal', 'internal error', req.requestId));
  }
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => answerError(err, req, res));
  return gateway;
}
