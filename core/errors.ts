/**
 * Business errors thrown by logic and mapped to HTTP by one middleware per service
 * (`core/http-errors.ts`). Each carries a stable `code` that appears in the error body.
 */
export abstract class DotgitError extends Error {
  abstract readonly status: number;
  abstract readonly code: string;
}

/** Thrown when the request's input does not fit: a bad name, a missing field, a malformed body. */
export class InputError extends DotgitError {
  override readonly name = 'InputError';
  readonly status = 400;
  readonly code = 'invalid_input';
}

/** Thrown when no credentials were given, or they are unknown, expired or revoked. */
export class AuthenticationError extends DotgitError {
  override readonly name = 'AuthenticationError';
  readonly status = 401;
  readonly code = 'unauthenticated';
}

/** Thrown when the caller is known but lacks the permission or scope for the action. */
export class NotAllowedError extends DotgitError {
  override readonly name = 'NotAllowedError';
  readonly status = 403;
  readonly code = 'forbidden';
}

/** Thrown when the thing does not exist, or the caller may not know that it exists. */
export class NotFoundError extends DotgitError {
  override readonly name = 'NotFoundError';
  readonly status = 404;
  readonly code = 'not_found';
}

/** Thrown when the thing already exists or the request conflicts with current state. */
export class ConflictError extends DotgitError {
  override readonly name = 'ConflictError';
  readonly status = 409;
  readonly code = 'conflict';
}

/**
 * Thrown when the request is well-formed but cannot be processed as sent, e.g. an Idempotency-Key
 * reused with a different request (draft-ietf-httpapi-idempotency-key-header answers 422).
 */
export class UnprocessableError extends DotgitError {
  override readonly name = 'UnprocessableError';
  readonly status = 422;
  readonly code = 'unprocessable';
}

/** Thrown when a request body is larger than the limit for its kind. */
export class PayloadTooLargeError extends DotgitError {
  override readonly name = 'PayloadTooLargeError';
  readonly status = 413;
  readonly code = 'payload_too_large';
}

/** Thrown when a request body is of a media type the endpoint does not read (a JSON API sent a form). */
export class UnsupportedMediaTypeError extends DotgitError {
  override readonly name = 'UnsupportedMediaTypeError';
  readonly status = 415;
  readonly code = 'unsupported_media_type';
}

/** Thrown when a dependency (database, Temporal, an upstream) cannot answer now. */
export class UnavailableError extends DotgitError {
  override readonly name = 'UnavailableError';
  readonly status = 503;
  readonly code = 'unavailable';
  constructor(message: string, readonly retryAfterSeconds?: number) {
    super(message);
  }
}

/** Thrown when a limit of concurrent work is reached; the answer carries Retry-After. */
export class TooManyRequestsError extends DotgitError {
  override readonly name = 'TooManyRequestsError';
  readonly status = 429;
  readonly code = 'too_many_requests';
  constructor(message: string, readonly retryAfterSeconds: number) {
    super(message);
  }
}
