import { randomBytes } from 'node:crypto';
import express, { type Request, type Router } from 'express';
import { SignJWT } from 'jose';
import type { Db } from '../../core/db';
import { AuthenticationError } from '../../core/errors';
import { SCOPES, type Scope } from '../../core/tokens';
import { principalForToken } from '../token-auth';
import { ACCESS_TOKEN_TYP } from './jwt-verifier';
import { OWN_ALG, type SigningKeys } from './signing-keys';

export interface IssuerOptions {
  db: Db;
  keys: SigningKeys;
  issuer: string;
  audience: string;
  /** Lifetime of issued access tokens. Default 600 s. */
  ttlSeconds: number;
}

function clientCredentials(req: Request): { id?: string; secret?: string } {
  const auth = req.header('authorization');
  if (auth && /^basic /i.test(auth)) {
    const decoded = Buffer.from(auth.slice(6), 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    return { id: decodeURIComponent(decoded.slice(0, i)), secret: decodeURIComponent(decoded.slice(i + 1)) };
  }
  return { id: req.body?.client_id, secret: req.body?.client_secret };
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
  router.post('/oauth/token', express.urlencoded({ extended: false, limit: '16kb' }), express.json({ limit: '16kb' }), (req, res, next) => {
    const oauthError = (status: number, error: string, description: string) => {
      res.setHeader('Cache-Control', 'no-store');
      res.status(status).json({ error, error_description: description });
    };
    (async () => {
      if (req.body?.grant_type !== 'client_credentials') return oauthError(400, 'unsupported_grant_type', 'only grant_type=client_credentials is supported');
      const { id, secret } = clientCredentials(req);
      if (!id || !secret) return oauthError(401, 'invalid_client', 'client_id and client_secret (an API token) are required');
      let principal;
      try {
        principal = await principalForToken(o.db, secret);
      } catch (err) {
        if (err instanceof AuthenticationError) return oauthError(401, 'invalid_client', 'unknown client or secret');
        throw err;
      }
      if (principal.username !== id) return oauthError(401, 'invalid_client', 'unknown client or secret');
      const asked = typeof req.body.scope === 'string' && req.body.scope.trim() ? req.body.scope.trim().split(/\s+/) : principal.scopes;
      if (!asked.every((s: string) => (SCOPES as readonly string[]).includes(s) && principal.scopes.includes(s as Scope))) {
        return oauthError(400, 'invalid_scope', `scopes must be a subset of the client's: ${principal.scopes.join(' ')}`);
      }
      const { kid, key } = await o.keys.signingKey();
      const accessToken = await new SignJWT({ scope: asked.join(' '), tok: principal.tokenId })
        .setProtectedHeader({ alg: OWN_ALG, kid, typ: ACCESS_TOKEN_TYP })
        .setIssuer(o.issuer)
        .setAudience(o.audience)
        .setSubject(principal.username)
        .setIssuedAt()
        .setNotBefore('0s')
        .setExpirationTime(`${o.ttlSeconds}s`)
        .setJti(randomBytes(12).toString('base64url'))
        .sign(key);
      res.setHeader('Cache-Control', 'no-store');
      res.json({ access_token: accessToken, token_type: 'Bearer', expires_in: o.ttlSeconds, scope: asked.join(' ') });
    })().catch(next);
  });
  return router;
}
