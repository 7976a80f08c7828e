import { randomBytes } from 'node:crypto';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { SignJWT } from 'jose';
import type { Db } from '../../core/db';
import { AuthenticationError } from '../../core/errors';
import { SCOPES, type Scope } from '../../core/tokens';
import type { RateLimiter } from '../rate-limit';
import { principalForToken } from '../token-auth';
import { ACCESS_TOKEN_TYP } from './jwt-verifier';
import { IdTokenIssuer } from '../../core/id-tokens';
import { OWN_ALG, type SigningKeys } from './signing-keys';

export interface IssuerOptions {
  db: Db;
  keys: SigningKeys;
  issuer: string;
  audience: string;
  /** Lifetime of issued access tokens. Default 600 s. */
  ttlSeconds: number;
  /**
   * The issuer of pipeline id-tokens (the platform's public URL; core/id-tokens.ts): with it,
   * `/.well-known/openid-configuration` is served for clouds' workload-identity federation.
   */
  oidcIssuer?: string;
  /** Brute-force protection shared with the gateway's other routes: failed client secrets count per address. */
  limiter?: Pick<RateLimiter, 'authFailureGate' | 'recordAuthFailure'>;
}

/** An OAuth error answer (RFC 6749 §5.2): `{error, error_description}`. */
class OAuthError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    description: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(description);
  }
}

const BODY_LIMIT = '16kb';

/** A body field that must be a string when present (a repeated form field or JSON value is not). */
function field(body: unknown, name: string): string | undefined {
  const v = body && typeof body === 'object' ? (body as Record<string, unknown>)[name] : undefined;
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new OAuthError(400, 'invalid_request', `${name} must be a string`);
  return v;
}

function percentDecoded(part: string, name: string): string {
  try {
    return decodeURIComponent(part.replace(/\+/g, ' '));
  } catch {
    throw new OAuthError(400, 'invalid_request', `${name} in the HTTP Basic credentials is not valid percent-encoding (RFC 6749 §2.3.1)`);
  }
}

/** Client id and secret: HTTP Basic (each part form-urlencoded, RFC 6749 §2.3.1), else the body. */
function clientCredentials(req: Request): { id?: string; secret?: string } {
  const auth = req.header('authorization');
  if (auth !== undefined) {
    const m = /^basic +([A-Za-z0-9+/]+={0,2})$/i.exec(auth);
    if (!m) throw new OAuthError(401, 'invalid_client', 'the Authorization header must be "Basic <base64 of client_id:client_secret>"');
    const decoded = Buffer.from(m[1], 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i < 0) throw new OAuthError(401, 'invalid_client', 'the HTTP Basic credentials need the form client_id:client_secret');
    return { id: percentDecoded(decoded.slice(0, i), 'client_id'), secret: percentDecoded(decoded.slice(i + 1), 'client_secret') };
  }
  return { id: field(req.body, 'client_id'), secret: field(req.body, 'client_secret') };
}

/** body-parser's refusals (malformed JSON, too large, unsupported charset…) as OAuth errors. */
function bodyProblem(err: unknown): OAuthError | undefined {
  const type = (err as { type?: unknown })?.type;
  if (type === 'entity.parse.failed') return new OAuthError(400, 'invalid_request', 'the request body is not valid JSON');
  if (type === 'entity.too.large' || type === 'parameters.too.many') return new OAuthError(413, 'invalid_request', `the request body is larger than ${BODY_LIMIT.replace('kb', ' KiB')}`);
  if (type === 'encoding.unsupported' || type === 'charset.unsupported') return new OAuthError(415, 'invalid_request', 'the request body must be UTF-8 (application/x-www-form-urlencoded or JSON)');
  if (type === 'request.aborted' || type === 'request.size.invalid' || type === 'stream.encoding.set') return new OAuthError(400, 'invalid_request', 'the request body could not be read');
  return undefined;
}

/**
 * OAuth 2.0 client credentials (RFC 6749 §4.4) and the issuer's JWKS. The client is a dotgit user
 * (`client_id` = user name) and its secret an API token of that user; the answer is a short-lived
 * ES256 JWT carrying at most the token's scopes. Errors use OAuth's own body (`{"error": …}`), as
 * OAuth clients expect.
 */
export function issuerRouter(o: IssuerOptions): Router {
  const router = express.Router();
  router.get('/.well-known/jwks.json', (_req, res, next) => {
    o.keys.jwks().then((jwks) => res.setHeader('Cache-Control', 'public, max-age=300').json(jwks), next);
  });
  const oidcIssuer = o.oidcIssuer;
  if (oidcIssuer !== undefined) {
    // Public, like the JWKS: a relying party reads it without credentials (OpenID Connect Discovery 1.0).
    router.get('/.well-known/openid-configuration', (_req, res) => {
      res.setHeader('Cache-Control', 'public, max-age=300').json(IdTokenIssuer.discovery(oidcIssuer));
    });
  }
  const oauthError = (res: Response, e: OAuthError) => {
    res.setHeader('Cache-Control', 'no-store');
    for (const k in e.headers) res.setHeader(k, e.headers[k]);
    if (e.status === 401) res.setHeader('WWW-Authenticate', 'Basic realm="dotgit"');
    res.status(e.status).json({ error: e.error, error_description: e.message });
  };
  router.post(
    '/oauth/token',
    express.urlencoded({ extended: false, limit: BODY_LIMIT }),
    express.json({ limit: BODY_LIMIT }),
    (req: Request, res: Response, next: NextFunction) => {
      (async () => {
        const grant = field(req.body, 'grant_type');
        if (grant === undefined) throw new OAuthError(400, 'invalid_request', 'grant_type is required (client_credentials)');
        if (grant !== 'client_credentials') throw new OAuthError(400, 'unsupported_grant_type', 'only grant_type=client_credentials is supported');
        const scope = field(req.body, 'scope');
        const { id, secret } = clientCredentials(req);
        if (!id || !secret) throw new OAuthError(401, 'invalid_client', 'client_id and client_secret (an API token) are required');
        const gate = await o.limiter?.authFailureGate(req.ip);
        if (gate && !gate.allowed) {
          throw new OAuthError(gate.status ?? 429, gate.status === 503 ? 'temporarily_unavailable' : 'slow_down', gate.message ?? 'too many failed authentications', gate.headers);
        }
        const principal = await principalForToken(o.db, secret).catch((err: unknown) => {
          if (err instanceof AuthenticationError) return undefined;
          throw err;
        });
        if (!principal || principal.username !== id) {
          await o.limiter?.recordAuthFailure(req.ip);
          throw new OAuthError(401, 'invalid_client', 'unknown client or secret');
        }
        const asked = scope?.trim() ? scope.trim().split(/\s+/) : principal.scopes;
        if (!asked.every((s: string) => (SCOPES as readonly string[]).includes(s) && principal.scopes.includes(s as Scope))) {
          throw new OAuthError(400, 'invalid_scope', `scopes must be a subset of the client's: ${principal.scopes.join(' ')}`);
        }
        // Never longer than the API token it is exchanged for (docs/decisions/0009-token-derivation.md).
        const ttl = principal.expiresAt ? Math.max(1, Math.min(o.ttlSeconds, Math.floor((principal.expiresAt - Date.now()) / 1000))) : o.ttlSeconds;
        const { kid, key } = await o.keys.signingKey();
        const accessToken = await new SignJWT({ scope: asked.join(' '), tok: principal.tokenId })
          .setProtectedHeader({ alg: OWN_ALG, kid, typ: ACCESS_TOKEN_TYP })
          .setIssuer(o.issuer)
          .setAudience(o.audience)
          .setSubject(principal.username)
          .setIssuedAt()
          .setNotBefore('0s')
          .setExpirationTime(`${ttl}s`)
          .setJti(randomBytes(12).toString('base64url'))
          .sign(key);
        res.setHeader('Cache-Control', 'no-store');
        res.json({ access_token: accessToken, token_type: 'Bearer', expires_in: ttl, scope: asked.join(' ') });
      })().catch(next);
    },
    (err: unknown, _req: Request, res: Response, next: NextFunction) => {
      const e = err instanceof OAuthError ? err : bodyProblem(err);
      if (e) oauthError(res, e);
      else next(err);
    },
  );
  return router;
}
