import express from 'express';
import type { AddressInfo } from 'node:net';
import * as errors from '../../core/errors';
import { BASIC_CHALLENGE, httpErrorOf, httpStatusOf } from '../../core/http-errors';
import { errorMiddleware } from '../../core/http';
import { createLogger } from '../../core/logger';
import { LfsValidationError } from '../../git-server/lfs/errors';
import { MisdirectedRequestError } from '../../git-server/node-router';

// Domain errors carry a code (and a cause), never an HTTP status; core/http-errors.ts is the one
// mapping every process edge answers with.

const {
  ConflictError,
  InputError,
  NotAllowedError,
  NotFoundError,
  PayloadTooLargeError,
  AuthenticationError,
  TooManyRequestsError,
  UnavailableError,
  UnprocessableError,
  UnsupportedMediaTypeError,
} = errors;

test('each domain error answers the status its code has always had', () => {
  const cases: [Error, number, string][] = [
    [new InputError('x'), 400, 'invalid_input'],
    [new AuthenticationError('x'), 401, 'unauthenticated'],
    [new NotAllowedError('x'), 403, 'forbidden'],
    [new NotFoundError('x'), 404, 'not_found'],
    [new ConflictError('x'), 409, 'conflict'],
    [new PayloadTooLargeError('x'), 413, 'payload_too_large'],
    [new UnsupportedMediaTypeError('x'), 415, 'unsupported_media_type'],
    [new MisdirectedRequestError('x'), 421, 'misdirected_request'],
    [new UnprocessableError('x'), 422, 'unprocessable'],
    [new LfsValidationError('x'), 422, 'lfs_validation_failed'],
    [new TooManyRequestsError('x', 5), 429, 'too_many_requests'],
    [new UnavailableError('x'), 503, 'unavailable'],
  ];
  for (const [err, status, code] of cases) {
    expect([err.name, httpStatusOf(err)]).toEqual([err.name, status]);
    expect(httpErrorOf(err)).toMatchObject({ status, code, message: 'x' });
    // No HTTP knowledge left on the error itself.
    expect(Object.prototype.hasOwnProperty.call(err, 'status')).toBe(false);
  }
});

test('every error class core/errors exports has a status of its own (a new one without a mapping would be a 500)', () => {
  const classes = (Object.values(errors) as unknown[]).filter((v): v is new (m: string, n: number) => errors.DotgitError => typeof v === 'function' && v.prototype instanceof errors.DotgitError);
  expect(classes.length).toBeGreaterThanOrEqual(10);
  for (const C of classes) {
    const status = httpStatusOf(new C('x', 1));
    expect([C.name, status >= 400 && status < 500 ? 'client' : status === 503 ? 'unavailable' : String(status)]).not.toEqual([C.name, '500']);
  }
});

test('401 carries the Basic challenge, Retry-After comes from the error; other errors are not mapped (500)', () => {
  expect(httpErrorOf(new AuthenticationError('who?'))!.headers).toEqual({ 'WWW-Authenticate': BASIC_CHALLENGE });
  expect(httpErrorOf(new UnavailableError('later', 3))!.headers).toEqual({ 'Retry-After': '3' });
  expect(httpErrorOf(new TooManyRequestsError('slow down', 1))!.headers).toEqual({ 'Retry-After': '1' });
  expect(httpErrorOf(new NotFoundError('gone'))!.headers).toEqual({});
  expect(httpErrorOf(new Error('bug'))).toBeUndefined();
  expect(httpStatusOf(new Error('bug'))).toBe(500);
  expect(httpStatusOf({ status: 404 })).toBe(500); // a status on a foreign object means nothing here
});

test('errors keep what they wrap as cause', () => {
  const low = new Error('ECONNREFUSED');
  expect(new UnavailableError('the git server is down', 2, { cause: low }).cause).toBe(low);
  expect(new TooManyRequestsError('busy', 1, { cause: low }).cause).toBe(low);
  expect(new NotFoundError('no such thing', { cause: low }).cause).toBe(low);
  expect(new InputError('plain').cause).toBeUndefined();
});

test('the api and git-server error middleware answer with the mapping: status, headers, CONTRACT body', async () => {
  const app = express();
  const thrown: Record<string, Error> = {
    unauth: new AuthenticationError('no token', { cause: new Error('bad signature') }),
    busy: new UnavailableError('database failing over', 2),
    lfs: new LfsValidationError('oid is not a SHA-256'),
    bug: new Error('secret detail'),
  };
  app.get('/:what', (req, _res, next) => next(thrown[String(req.params.what)]));
  app.use(errorMiddleware(createLogger('test', 'silent')));
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const unauth = await fetch(`${base}/unauth`, { headers: { 'x-request-id': 'r1' } });
    expect(unauth.status).toBe(401);
    expect(unauth.headers.get('www-authenticate')).toBe(BASIC_CHALLENGE);
    expect(await unauth.json()).toEqual({ error: { code: 'unauthenticated', message: 'no token', requestId: 'r1' } });
    const busy = await fetch(`${base}/busy`);
    expect([busy.status, busy.headers.get('retry-after')]).toEqual([503, '2']);
    expect(await busy.json()).toEqual({ error: { code: 'unavailable', message: 'database failing over', requestId: null } });
    expect((await fetch(`${base}/lfs`)).status).toBe(422);
    const bug = await fetch(`${base}/bug`);
    expect(bug.status).toBe(500);
    expect(await bug.json()).toEqual({ error: { code: 'internal', message: 'internal error', requestId: null } });
  } finally {
    await new Promise((r) => server.close(r));
  }
});
