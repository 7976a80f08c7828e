/**
 * Business (domain) errors thrown by logic. They know nothing of HTTP: each carries a stable `code`
 * (it appears in error bodies) and, when it wraps another error, that error as `cause`. The HTTP
 * status of a code is decided in one place, core/http-errors.ts, which every process edge (the api's
 * and git-server's error middleware, the gateway, the api's WebSocket endpoint) uses.
 */
export abstract class DotgitError extends Error {
  abstract readonly code: string;
  constructor(message?: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** Thrown when the request's input does not fit: a bad name, a missing field, a malformed body. */
export class InputError extends DotgitError {
  override readonly name = 'InputError';
  readonly code = 'invalid_input';
}

/** Thrown when no credentials were given, or they are unknown, expired or revoked. */
export class AuthenticationError extends DotgitError {
  override readonly name = 'AuthenticationError';
  readonly code = 'unauthenticated';
}

/** Thrown when the caller is known but lacks the permission or scope for the action. */
export class NotAllowedError extends DotgitError {
  override readonly name = 'NotAllowedError';
  readonly code = 'forbidden';
}

/** Thrown when the thing does not exist, or the caller may not know that it exists. */
export class NotFoundError extends DotgitError {
  override readonly name = 'NotFoundError';
  readonly code = 'not_found';
}

/** Thrown when the thing already exists or the request conflicts with current state. */
export class ConflictError extends DotgitError {
  override readonly name = 'ConflictError';
  readonly code = 'conflict';
}

/**
 * Thrown when the request is well-formed but cannot be processed as sent, e.g. an Idempotency-Key
 * reused with a different request (draft-ietf-httpapi-idempotency-key-header answers 422).
 */
export class UnprocessableError extends DotgitError {
  override readonly name = 'UnprocessableError';
  readonly code = 'unprocessable';
}

/** Thrown when a request body is larger than the limit for its kind. */
export class PayloadTooLargeError extends DotgitError {
  override readonly name = 'PayloadTooLargeError';
  readonly code = 'payload_too_large';
}

/** Thrown when a request body is of a media type the endpoint does not read (a JSON API sent a form). */
export class UnsupportedMediaTypeError extends DotgitError {
  override readonly name = 'UnsupportedMediaTypeError';
  readonly code = 'unsupported_media_type';
}

/** Thrown when a dependency (database, Temporal, an upstream) cannot answer now. */
export class UnavailableError extends DotgitError {
  override readonly name = 'UnavailableError';
  readonly code = 'unavailable';
  constructor(message: string, readonly retryAfterSeconds?: number, options?: ErrorOptions) {
    super(message, options);
  }
}

/** Thrown when a limit of concurrent work is reached; the answer carries Retry-After. */
export class TooManyRequestsError extends DotgitError {
  override readonly name = 'TooManyRequestsError';
  readonly code = 'too_many_requests';
  constructor(message: string, readonly retryAfterSeconds: number, options?: ErrorOptions) {
    super(message, options);
  }
}
