import { DotgitError } from './errors';

/**
 * The one mapping of domain errors (core/errors.ts) to HTTP answers, used by every process edge: the
 * api's and git-server's error middleware (core/http.ts `errorMiddleware`), git-server's LFS
 * answers, the gateway's error handler and upgrade refusals, and the api's WebSocket endpoint. The
 * errors carry only a stable code; which status a code is answered with is decided here (Backstage's
 * pattern: errors without HTTP knowledge, one mapper per edge).
 */

/** The status of each error code (the codes are CONTRACT: they appear in error bodies). */
const STATUS_OF_CODE: Readonly<Record<string, number>> = {
  invalid_input: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  misdirected_request: 421, // git-server: a forwarded request reached a node without the repository
  unprocessable: 422,
  lfs_validation_failed: 422, // the Git LFS API answers a request that does not fit it with 422
  too_many_requests: 429,
  unavailable: 503,
};

/** The challenge a 401 carries, so git and browsers ask for (or resend) Basic credentials. */
export const BASIC_CHALLENGE = 'Basic realm="dotgit", charset="UTF-8"';

/** The HTTP status of an error: its code's for a domain error, 500 for anything else (a bug). */
export function httpStatusOf(err: unknown): number {
  return err instanceof DotgitError ? (STATUS_OF_CODE[err.code] ?? 500) : 500;
}

/** A domain error as an HTTP answer: status, code, message and the headers it needs. Undefined for anything else. */
export function httpErrorOf(err: unknown): { status: number; code: string; message: string; headers: Record<string, string> } | undefined {
  if (!(err instanceof DotgitError)) return undefined;
  const status = httpStatusOf(err);
  const headers: Record<string, string> = {};
  if (status === 401) headers['WWW-Authenticate'] = BASIC_CHALLENGE;
  const retryAfter = (err as { retryAfterSeconds?: number }).retryAfterSeconds;
  if (retryAfter !== undefined) headers['Retry-After'] = String(retryAfter);
  return { status, code: err.code, message: err.message, headers };
}

/** The CONTRACT error body. */
export function errorBody(code: string, message: string, requestId?: string) {
  return { error: { code, message, requestId: requestId ?? null } };
}
