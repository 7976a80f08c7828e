import type { ServerResponse } from 'node:http';
import { queryOf, sendJson, type EdgeRequest } from './edge-request';
import { errorBody } from '../core/http';
import { upstreamFor } from './upstream-for';
import { DRAIN_CAP_BYTES, drainRequest } from './proxy';
import { IDEMPOTENCY_KEY_HEADER, idempotencyKeyProblem } from './idempotency';

export interface WafLimits {
  /** Request bodies per route kind, in bytes. */
  bodyBytes: { api: number; gitFetch: number; gitPush: number; lfs: number };
  /** At most this many header fields (Node's own limit on their total size answers 431 too). */
  maxHeaders: number;
}

export const DEFAULT_WAF_LIMITS: WafLimits = {
  bodyBytes: { api: 1024 * 1024, gitFetch: 64 * 1024 * 1024, gitPush: 2 * 1024 ** 3, lfs: 5 * 1024 ** 3 },
  maxHeaders: 100,
};

const METHODS = {
  api: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
  git: ['GET', 'HEAD', 'POST', 'PUT'],
} as const;

/** Query parameters that carry credentials elsewhere (GitLab, OAuth); refused here so tokens never sit in URLs and logs. */
const TOKEN_PARAMS = ['access_token', 'token', 'private_token', 'api_key', 'apikey', 'password'];

/** The body limit for a request, by route kind. */
export function bodyLimitFor(path: string, method: string, limits: WafLimits): number {
  if (upstreamFor(path) === 'api') return limits.bodyBytes.api;
  if (path.includes('/info/lfs/')) return limits.bodyBytes.lfs;
  if (path.endsWith('/git-receive-pack')) return limits.bodyBytes.gitPush;
  return method === 'GET' || method === 'HEAD' ? 0 : limits.bodyBytes.gitFetch;
}

/**
 * Why a raw request target is refused before routing, or undefined: traversal (`..`, encoded dots
 * or slashes, backslashes), empty segments, control characters.
 */
export function pathProblem(rawTarget: string): string | undefined {
  // A fragment is never part of a request target (RFC 9112 §3.2); left in, it would end the path
  // for some parsers and not for others (a push classed as a fetch by its path's last segment).
  if (rawTarget.includes('#')) return 'a fragment (#) in the request target';
  const rawPath = rawTarget.split('?')[0];
  if (/[\u0000-\u001f\u007f]/.test(rawPath)) return 'control characters in the path';
  // Spaces and bytes past ASCII are percent-encoded by every client; raw, parsers trim or keep them differently.
  if (/[^\x21-\x7e]/.test(rawPath)) return 'spaces or non-ASCII bytes in the path (percent-encode them)';
  if (/%(2e|2f|5c|00)/i.test(rawPath)) return 'encoded dots, slashes or NULs in the path';
  if (rawPath.includes('\\')) return 'backslashes in the path';
  if (rawPath.split('/').slice(1).some((seg) => seg === '..' || seg === '.')) return 'dot segments in the path';
  if (rawPath.includes('//')) return 'empty path segments';
  return undefined;
}

/**
 * Edge checks every request passes before authentication: 400, 405, 413, 431 with clear messages.
 * The check answers a refused request itself and returns false; true lets the request on.
 */
export function edgeChecks(limits: WafLimits = DEFAULT_WAF_LIMITS): (req: EdgeRequest, res: ServerResponse) => boolean {
  return (req, res) => {
    const fail = (status: number, code: string, message: string, headers?: Record<string, string>) => {
      sendJson(res, status, errorBody(code, message, req.requestId), headers);
      return false;
    };
    if (req.rawHeaders.length / 2 > limits.maxHeaders) return fail(431, 'headers_too_large', `at most ${limits.maxHeaders} header fields are accepted`);
    const problem = pathProblem(req.originalUrl);
    if (problem) return fail(400, 'bad_path', `refused: ${problem}`);
    // Most requests have no query: parsed only when there is one.
    const raw = queryOf(req.originalUrl);
    if (raw !== undefined) {
      const query = new URLSearchParams(raw);
      const leaked = TOKEN_PARAMS.find((p) => query.has(p));
      if (leaked) return fail(400, 'token_in_url', `credentials are not accepted in the URL (${leaked}); send Authorization: Bearer <token>`);
    }
    const keyProblem = idempotencyKeyProblem(req.headers[IDEMPOTENCY_KEY_HEADER] as string | undefined);
    if (keyProblem) return fail(400, 'bad_idempotency_key', keyProblem);
    const kind = upstreamFor(req.path);
    if (kind) {
      const allowed: readonly string[] = METHODS[kind];
      if (!allowed.includes(req.method)) return fail(405, 'method_not_allowed', `${req.method} is not allowed here`, { Allow: allowed.join(', ') });
      const limit = bodyLimitFor(req.path, req.method, limits);
      const declared = Number(req.header('content-length') ?? 0);
      if (declared > limit) {
        // Read and drop a moderate body so the client sees the answer; close on a huge one.
        if (declared <= DRAIN_CAP_BYTES) drainRequest(req);
        else res.setHeader('Connection', 'close');
        return fail(413, 'payload_too_large', `request bodies here are limited to ${limit} bytes`);
      }
    }
    return true;
  };
}
