import express, { type ErrorRequestHandler, type RequestHandler } from 'express';
import { z } from 'zod';
import { DotgitError, InputError, UnsupportedMediaTypeError } from '../core/errors';
import { assertValidName } from '../core/names';
import { ENVIRONMENT_NAME } from '../core/pipeline-spec';

/** Where in the body a problem is, as a reader writes it: `pushers[1]`, `a.b`; `body` for the whole. */
export function fieldPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return 'body';
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join('');
}

const KINDS: Record<string, string> = {
  object: 'a JSON object',
  record: 'a JSON object',
  array: 'an array',
  string: 'a string',
  boolean: 'true or false',
  number: 'a number',
  int: 'an integer',
};

type Issue = z.core.$ZodRawIssue;

/** What a JSON value is, for "…, not an array". */
function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (v === undefined) return 'empty';
  return `a ${typeof v}`;
}

/**
 * Messages for zod's own issues that name the field. A schema's own message wins over these
 * (zod's precedence), and such messages name their field themselves.
 */
function messageFor(iss: Issue, where = ''): string | undefined {
  const field = fieldPath(iss.path ?? []);
  switch (iss.code) {
    case 'invalid_type':
      if (iss.input === undefined && field !== 'body') return `${field} is required`;
      // A query parameter given twice (`?job=a&job=b`) is an array, not a text.
      if (where === 'query parameter' && Array.isArray(iss.input)) return `${field} must be given once, as text`;
      if (field === 'body' && (iss.expected === 'object' || iss.expected === 'record')) return `body must be a JSON object, not ${kindOf(iss.input)}`;
      return `${field} must be ${KINDS[iss.expected] ?? iss.expected}`;
    case 'unrecognized_keys': {
      const inside = field === 'body' ? '' : ` in ${field}`;
      return `unknown field${iss.keys.length > 1 ? 's' : ''}${inside}: ${iss.keys.join(', ')}`;
    }
    case 'invalid_value':
      return `${field} must be one of ${iss.values.map(String).join(', ')}`;
    case 'too_big':
      return `${field} must have at most ${String(iss.maximum)} ${iss.origin === 'string' ? 'characters' : 'items'}`;
    case 'too_small':
      return `${field} must have at least ${String(iss.minimum)} ${iss.origin === 'string' ? 'characters' : 'items'}`;
    default:
      return undefined;
  }
}

/** The body as `schema` reads it, or an InputError (400) naming each field that does not fit. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  return parsePart(schema, body, '');
}

/** Like parseBody, for a request's path parameters or query: messages say which (`query parameter job …`). */
function parsePart<S extends z.ZodType>(schema: S, value: unknown, where: '' | 'path parameter' | 'query parameter'): z.output<S> {
  const r = schema.safeParse(value, { error: (iss) => messageFor(iss, where) });
  if (r.success) return r.data;
  // Every message names its field first; a parameter's says which kind it is (`query parameter job …`).
  throw new InputError([...new Set(r.error.issues.map((i) => (where ? `${where} ${i.message}` : i.message)))].slice(0, 5).join('; '));
}

/** What validateRequests needs of a route (api/schemas/routes.ts ApiRoute). */
export interface ValidatedRoute {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  path: string;
  params?: z.ZodType;
  query?: z.ZodType;
  body?: z.ZodType;
  /** Anonymous callers may use it; other routes answer an anonymous caller 401 (the handler's) before any 400. */
  anonymous?: boolean;
}

/** Marks the route layers of validateRequests, so a route listing can tell them from the handlers. */
export const VALIDATOR = Symbol('dotgit.validator');

/**
 * Checks each request against its route's schemas (path parameters, query, JSON body) before any
 * handler runs: a 400 names the part and field. Express matches the paths, as it does for the
 * handlers; mount it before them. Wildcard parameters (`*branch`) are checked joined with `/`. A
 * write without a body is checked as `{}`. Handlers still read the request as it came.
 */
export function validateRequests(routes: readonly ValidatedRoute[]): express.Router {
  const router = express.Router();
  for (const r of routes) {
    const check: RequestHandler & { [VALIDATOR]?: true } = (req, _res, next) => {
      if (!r.anonymous && !req.principal) return next();
      const params = Object.fromEntries(Object.entries(req.params as Record<string, string | string[]>).map(([k, v]) => [k, Array.isArray(v) ? v.join('/') : v]));
      if (r.params) parsePart(r.params, params, 'path parameter');
      if (r.query) parsePart(r.query, req.query, 'query parameter');
      if (r.body) parseBody(r.body, req.body ?? {});
      next();
    };
    check[VALIDATOR] = true;
    router[r.method](r.path, check);
  }
  return router;
}

/**
 * Error middleware right after the JSON body parser. The parser (strict) refuses JSON that is no
 * object or array with the same error as broken JSON; valid JSON is told apart here and named like
 * any other body that is no object. Everything else goes on to core's errorMiddleware (bodyRefusal).
 */
export const jsonBodyErrors: ErrorRequestHandler = (err: unknown, _req, _res, next) => {
  const e = err as { type?: string; body?: unknown };
  if (e?.type !== 'entity.parse.failed') {
    next(err);
    return;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(String(e.body));
  } catch {
    next(err); // broken JSON
    return;
  }
  next(new InputError(`body must be a JSON object, not ${kindOf(parsed)}`));
};

/** C0 controls and DEL: never part of a name, ref or id, and a NUL cannot even reach Postgres. */
const CONTROL_CHARS = /[\x00-\x1f\x7f]/;

/** A query parameter as one string; a repeated one (an array) or one with control characters is a 400 naming it. */
export function queryParam(query: Record<string, unknown>, name: string): string | undefined {
  const v = query[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new InputError(`query parameter ${name} must be given once, as text`);
  if (CONTROL_CHARS.test(v)) throw new InputError(`query parameter ${name} must not contain control characters`);
  return v;
}

/**
 * Refuses a request whose query string has control characters in any parameter (name or value),
 * naming the parameter, before a handler passes one on to Postgres or git.
 */
export const queryWithoutControlChars: RequestHandler = (req, _res, next) => {
  for (const [name, value] of Object.entries(req.query as Record<string, unknown>)) {
    const values = (Array.isArray(value) ? value : [value]).filter((x): x is string => typeof x === 'string');
    if (CONTROL_CHARS.test(name) || values.some((x) => CONTROL_CHARS.test(x))) {
      next(new InputError(`query parameter ${JSON.stringify(name)} must not contain control characters`));
      return;
    }
  }
  next();
};

/** The media types the API reads bodies in (express.json's `type`). */
export const JSON_TYPES = ['application/json', 'application/*+json'];

/**
 * A write with a body that is not JSON is refused as such (415), rather than read as an empty
 * object and answered with "field is required". A write without a body (approve, cancel: no
 * Content-Length or 0, no Transfer-Encoding) goes on.
 */
export const requireJsonBody: RequestHandler = (req, _res, next) => {
  if (!['POST', 'PUT', 'PATCH'].includes(req.method)) return next();
  const length = req.headers['content-length'];
  const hasBody = req.headers['transfer-encoding'] !== undefined || (length !== undefined && Number(length) !== 0);
  if (!hasBody || req.is(JSON_TYPES)) return next();
  const given = req.headers['content-type'];
  next(new UnsupportedMediaTypeError(`the request body must be JSON, sent with Content-Type: application/json (it was sent ${given ? `as ${JSON.stringify(given.slice(0, 100))}` : 'without a Content-Type'})`));
};

/** A schema from an existing check that throws an InputError naming the field (names, URLs…). */
export function checked<T>(check: (value: unknown) => T) {
  return z.unknown().transform((value, ctx): T => {
    try {
      return check(value);
    } catch (err) {
      if (!(err instanceof DotgitError)) throw err;
      ctx.addIssue({ code: 'custom', message: err.message, input: value });
      return z.NEVER;
    }
  });
}

/** A name as CONTRACT "git" allows it (owner, repository, user). */
export const validName = (field: string) => checked((v) => assertValidName(field, v));

/** A branch, tag or commit id as a user gives it; the git-server decides what it names. */
const REF_MESSAGE = 'ref must be a branch, tag or commit id';
export const refField = z
  .string({ error: REF_MESSAGE })
  .min(1, { error: REF_MESSAGE })
  .max(255, { error: REF_MESSAGE })
  // No control characters: git never names a ref with one, and a NUL cannot be passed to git at all.
  .regex(/^[^\x00-\x1f\x7f]*$/, { error: 'ref must not contain control characters' });

const ENVIRONMENT_MESSAGE = 'environment must be an environment name: letters, digits, _ and -, at most 64';
/** An environment of the pipeline file. */
export const environmentField = z.string({ error: ENVIRONMENT_MESSAGE }).regex(ENVIRONMENT_NAME, { error: ENVIRONMENT_MESSAGE });

/** Any JSON object: for bodies whose fields a service checks itself. */
export const jsonObject = z.record(z.string(), z.unknown());

/** true or false; absent is false. */
export const flag = z.boolean().optional().transform((v) => v ?? false);
