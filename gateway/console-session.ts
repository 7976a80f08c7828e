import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import express, { type Request, type Response, type Router } from 'express';
import type { EdgeRequest } from './edge-request';
import type { Db } from '../core/db';
import { AuthenticationError, InputError, NotAllowedError, UnsupportedMediaTypeError } from '../core/errors';
import type { Principal } from '../core/principal';
import { deleteConsoleSession, findLiveConsoleSession, insertConsoleSession, takeSigninCode } from '../core/stores/console-sessions-store';
import { findLiveTokenByHash } from '../core/stores/tenants-store';
import { hashToken, type Scope } from '../core/tokens';
import type { RateLimiter } from './rate-limit';
import { MAX_TOKEN_LENGTH, principalFromRow } from './token-auth';

/**
 * The web console's sessions (ADR 0032). Signing in (`POST /console/session` with an API token or a
 * one-time code) sets an HttpOnly, SameSite=Strict cookie holding an opaque random id; the gateway
 * turns that cookie into the token's principal on `/api/` requests, so the api sees what a Bearer
 * token would give it. Cookie-authenticated writes must come from our own origin and carry the
 * session's CSRF token in `X-CSRF-Token` (cross-site pages can send neither).
 */
export const SESSION_COOKIE = 'dotgit_session';
export const CSRF_HEADER = 'x-csrf-token';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export interface ConsoleSession {
  principal: Principal;
  csrf: string;
  expiresAt: Date;
}

const hashOf = (secret: string) => createHash('sha256').update(secret, 'utf8').digest();

/** The session id a Cookie header carries, or undefined. */
export function sessionIdFrom(cookieHeader: string | undefined): string | undefined {
  if (!cookieHeader) return undefined;
  // Cookie names and our base64url values need none of RFC 6265's quoting; a plain split suffices.
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE) {
      const value = part.slice(eq + 1).trim();
      return /^[A-Za-z0-9_-]{20,100}$/.test(value) ? value : undefined;
    }
  }
  return undefined;
}

/** A request of the console: to its session endpoint, or carrying its cookie. */
export function isConsoleRequest(req: EdgeRequest): boolean {
  return req.path === '/console/session' || sessionIdFrom(req.header('cookie')) !== undefined;
}

/** The live session of this id: throws AuthenticationError when it is unknown, expired, or its token is no longer live. */
export async function lookupSession(db: Db, id: string): Promise<ConsoleSession> {
  const row = await findLiveConsoleSession(db, hashOf(id));
  if (!row) throw new AuthenticationError('the console session has ended; sign in again');
  const sessionEnds = new Date(row.session_expires_at as string).getTime();
  const tokenEnds = row.expires_at ? new Date(row.expires_at as string).getTime() : null;
  const expiresAt = tokenEnds === null ? sessionEnds : Math.min(sessionEnds, tokenEnds);
  return { principal: principalFromRow(row, row.scopes as Scope[], Number(row.token_id), expiresAt), csrf: String(row.csrf), expiresAt: new Date(expiresAt) };
}

/**
 * Whether the request comes from a page of our own origin: its Origin (sent by browsers on every
 * cross-origin request and on same-origin writes) names this host, and Sec-Fetch-Site, when sent,
 * says same-origin. Another port of the same host is same-site for cookies, hence the origin test.
 */
function fromOwnOrigin(req: EdgeRequest): boolean {
  const site = req.header('sec-fetch-site');
  if (site && site !== 'same-origin' && site !== 'none') return false;
  const origin = req.header('origin');
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === req.header('host');
  } catch {
    return false;
  }
}

/** Refuses a cookie-authenticated write that is cross-origin or lacks the session's CSRF token (403). */
export function checkCsrf(req: EdgeRequest, csrf: string): void {
  if (SAFE_METHODS.has(req.method)) return;
  if (!fromOwnOrigin(req)) throw new NotAllowedError('cross-origin request refused: a console session writes only from its own origin');
  const sent = Buffer.from(req.header(CSRF_HEADER) ?? '');
  const want = Buffer.from(csrf);
  if (sent.length !== want.length || !timingSafeEqual(sent, want)) throw new NotAllowedError(`missing or wrong ${CSRF_HEADER} header: cookie-authenticated writes must send the session's CSRF token`);
}

export interface ConsoleSessionOptions {
  db: Db;
  /** Session lifetime (`DOTGIT_CONSOLE_SESSION_TTL`); a session also ends with its token. */
  ttlSeconds: number;
  /** The Temporal Web UI's workflow list, for links to a run's workflow (DOTGIT_TEMPORAL_UI_URL). */
  temporalUiUrl?: string;
  /** Failed sign-ins count against the address like other refused credentials. */
  limiter?: Pick<RateLimiter, 'authFailureGate' | 'recordAuthFailure'>;
}

const whoami = (s: ConsoleSession, temporalUiUrl: string | undefined) => ({
  username: s.principal.username,
  tenant: s.principal.tenantName,
  role: s.principal.role,
  platformAdmin: s.principal.platformAdmin,
  scopes: s.principal.scopes,
  csrf: s.csrf,
  expiresAt: s.expiresAt.toISOString(),
  temporalUiUrl: temporalUiUrl ?? null,
});

/** `GET|POST|DELETE /console/session`: who is signed in (with the CSRF token), sign in, sign out. */
export function consoleSessionRouter(o: ConsoleSessionOptions): Router {
  const router = express.Router();
  const cookieOptions = (req: Request) => ({ httpOnly: true, sameSite: 'strict' as const, path: '/', secure: req.secure });

  router.get('/console/session', async (req: Request, res: Response) => {
    const id = sessionIdFrom(req.header('cookie'));
    if (!id) throw new AuthenticationError('not signed in');
    res.set('Cache-Control', 'no-store').json(whoami(await lookupSession(o.db, id), o.temporalUiUrl));
  });

  router.post('/console/session', express.json({ limit: '4kb' }), async (req: Request, res: Response) => {
    // A JSON body (no form can send one cross-origin without a preflight) from our own origin: no login CSRF.
    if (!req.is('application/json')) throw new UnsupportedMediaTypeError('send {"token": "…"} or {"code": "…"} as application/json');
    if (!fromOwnOrigin(req)) throw new NotAllowedError('cross-origin sign-in refused');
    const body = (req.body ?? {}) as Record<string, unknown>;
    const token = typeof body.token === 'string' ? body.token.trim() : undefined;
    const code = typeof body.code === 'string' ? body.code : undefined;
    if (!token === !code) throw new InputError('send exactly one of "token" (an API token) or "code" (a one-time sign-in code)');
    const gate = await o.limiter?.authFailureGate(req.ip);
    if (gate && !gate.allowed) throw new AuthenticationError(gate.message ?? 'too many failed sign-ins');
    let tokenId: number | undefined;
    if (token) {
      const row = token.length <= MAX_TOKEN_LENGTH ? await findLiveTokenByHash(o.db, hashToken(token)) : undefined;
      tokenId = row ? Number(row.token_id) : undefined;
    } else if (code && code.length <= 100) tokenId = await takeSigninCode(o.db, hashOf(code));
    if (tokenId === undefined) {
      await o.limiter?.recordAuthFailure(req.ip);
      throw new AuthenticationError(token ? 'invalid, expired or revoked token' : 'this sign-in link was already used or has expired; ask for a new one');
    }
    const id = randomBytes(32).toString('base64url');
    const expires = await insertConsoleSession(o.db, { idHash: hashOf(id), tokenId, csrf: randomBytes(24).toString('base64url'), ttlSeconds: o.ttlSeconds });
    res.cookie(SESSION_COOKIE, id, { ...cookieOptions(req), expires });
    res.status(201).set('Cache-Control', 'no-store').json(whoami(await lookupSession(o.db, id), o.temporalUiUrl));
  });

  router.delete('/console/session', async (req: Request, res: Response) => {
    const id = sessionIdFrom(req.header('cookie'));
    if (id) {
      checkCsrf(req, (await lookupSession(o.db, id)).csrf);
      await deleteConsoleSession(o.db, hashOf(id));
    }
    res.clearCookie(SESSION_COOKIE, cookieOptions(req)).status(204).end();
  });
  return router;
}
