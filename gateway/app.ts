import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Db } from '../core/db';
import { AuthenticationError, DotgitError } from '../core/errors';
import { errorBody } from '../core/http';
import { IDENTITY_HEADER, signIdentity } from '../core/internal-identity';
import type { Logger } from '../core/logger';
import type { Principal } from '../core/principal';
import { forward, upstreamPolicies, type UpstreamPolicies } from './proxy';
import { nextTraceparent } from './trace-context';
import { DEFAULT_WAF_LIMITS, bodyLimitFor, pathProblem, waf, type WafLimits } from './waf';
import { proxyUpgrade } from './upgrade';
import { requestIdFrom } from './request-id';
import { upstreamFor } from './upstream-for';
import { pickUpstream, routingTable } from './routing';
import { subjectFor, type RateLimiter } from './rate-limit';
import { credentialsFrom, looksLikeJwt, principalForCertificate, principalForJwt, principalForToken } from './token-auth';
import { clientCertUser } from './tls';
import type { JwtVerifier } from './jwt/jwt-verifier';

export interface GatewayOptions {
  db: Db;
  log: Logger;
  internalSecret: string;
  upstreams: { api: URL; git: URL };
  /** Extra routes (`DOTGIT_ROUTES_FILE`): path prefixes and header rules to other upstreams. */
  routesFile?: string;
  /** Edge limits (body sizes per route kind, header count). Default DEFAULT_WAF_LIMITS. */
  waf?: WafLimits;
  /** Resilience policies per upstream name; default `upstreamPolicies()` for each. */
  policies?: Record<string, UpstreamPolicies>;
  /** Verifies bearer JWTs (ours and configured issuers'); without it only API tokens are accepted. */
  jwt?: JwtVerifier;
  /** Our issuer (`POST /oauth/token`, `/.well-known/jwks.json`); optional. */
  issuer?: express.Router;
  /** Client certificates (on the HTTPS listener): `required` refuses requests without a valid one. Default: not used. */
  clientCert?: 'optional' | 'required';
  /** Rate limits (sliding window + leaky bucket in Redis); without it nothing is limited. */
  limiter?: RateLimiter;
  /** Named checks behind `/healthz`; each rejects when its part is down. */
  healthChecks: Record<string, () => Promise<unknown>>;
}

export function createGatewayApp(o: GatewayOptions) {
  const app = express();
  app.disable('x-powered-by');
  const wafLimits = o.waf ?? DEFAULT_WAF_LIMITS;
  const table = routingTable(o.upstreams, o.routesFile);
  // One breaker per upstream; git answers can take minutes to start (pack generation).
  const policies: Record<string, UpstreamPolicies> = { ...o.policies };
  const policyFor = (name: string) => (policies[name] ??= upstreamPolicies(name === 'git' ? { attemptTimeoutMs: 600_000 } : {}));

  app.use((req, res, next) => {
    const id = requestIdFrom(req.header('x-request-id'));
    req.requestId = id;
    res.setHeader('X-Request-Id', id);
    next();
  });

  app.use(waf(wafLimits));

  app.get('/healthz', (req, res) => {
    const names = Object.keys(o.healthChecks);
    void Promise.all(names.map((n) => o.healthChecks[n]().then(() => null, () => n))).then((failed) => {
      const bad = failed.filter((f): f is string => f !== null);
      if (bad.length === 0) res.json({ status: 'ok' });
      else res.status(503).json({ status: 'unavailable', failing: bad, requestId: req.requestId });
    });
  });

  if (o.issuer) app.use(o.issuer);

  app.use((req, res, next) => {
    const target = upstreamFor(req.path) ? pickUpstream(table, req) : undefined;
    if (!target) {
      res.status(404).json(errorBody('not_found', `no route for ${req.path}`, req.requestId));
      return;
    }
    authenticate(req.header('authorization'), req.socket)
      .then(async (principal) => {
        if (o.limiter) {
          // JWTs of outside issuers and certificates have no token id: they are limited per user.
          const subject = principal ? (principal.tokenId ? `token:${principal.tokenId}` : `user:${principal.userId}`) : subjectFor(null, req.ip);
          const decision = await o.limiter.check({ method: req.method, path: req.path, query: req.query, subject, tenant: principal?.tenantName });
          for (const [k, v] of Object.entries(decision.headers)) res.setHeader(k, v);
          if (!decision.allowed) {
            res.status(decision.status ?? 429).json(errorBody(decision.status === 503 ? 'unavailable' : 'rate_limited', decision.message ?? 'rate limited', req.requestId));
            return;
          }
        }
        const identity = await signIdentity(o.internalSecret, principal, req.requestId!);
        const traceparent = nextTraceparent(req.header('traceparent'));
        o.log.info({ requestId: req.requestId, traceparent, method: req.method, path: req.path, upstream: target.name, user: principal?.username }, 'forward');
        await forward(req, res, target.url, { 'x-request-id': req.requestId!, traceparent, [IDENTITY_HEADER]: identity }, {
          policies: policyFor(target.name),
          bodyLimit: bodyLimitFor(req.path, req.method, wafLimits),
        });
      })
      .catch(next);
  });

  async function authenticate(authorization: string | undefined, socket: Socket): Promise<Principal | null> {
    const token = credentialsFrom(authorization);
    if (o.clientCert && (socket as { encrypted?: boolean }).encrypted) {
      const cert = clientCertUser(socket);
      if (cert.presented && !cert.authorized) throw new AuthenticationError('the client certificate is not signed by the configured CA');
      if (!cert.presented && o.clientCert === 'required') throw new AuthenticationError('a client certificate is required');
      // A verified certificate identifies its subject (CN = user name) when no token is sent.
      if (cert.authorized && cert.username && !token) return principalForCertificate(o.db, cert.username);
    }
    if (!token) return null;
    if (looksLikeJwt(token)) {
      if (!o.jwt) throw new AuthenticationError('JWTs are not accepted here');
      return principalForJwt(o.db, await o.jwt.verify(token));
    }
    return principalForToken(o.db, token);
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
    authenticate(fake.header('authorization'), req.socket)
      .then(async (principal) => {
        const identity = await signIdentity(o.internalSecret, principal, requestId);
        proxyUpgrade(req, socket, head, target.url, { 'x-request-id': requestId, traceparent: nextTraceparent(fake.header('traceparent')), [IDENTITY_HEADER]: identity });
      })
      .catch((err) => refuse(err instanceof DotgitError ? err.status : 500, err instanceof DotgitError ? err.message : 'internal error'));
  };
  app.set('onUpgrade', onUpgrade);

  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (err instanceof DotgitError) {
      if (err.status === 401) res.setHeader('WWW-Authenticate', 'Basic realm="dotgit", charset="UTF-8"');
      res.status(err.status).json(errorBody(err.code, err.message, req.requestId));
      return;
    }
    o.log.error({ err, requestId: req.requestId }, 'gateway error');
    res.status(500).json(errorBody('internal', 'internal error', req.requestId));
  });
  return app;
}
