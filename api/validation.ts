import type { ErrorRequestHandler } from 'express';
import { z } from 'zod';
import { DotgitError, InputError } from '../core/errors';
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
function messageFor(iss: Issue): string | undefined {
  const field = fieldPath(iss.path ?? []);
  switch (iss.code) {
    case 'invalid_type':
      if (iss.input === undefined && field !== 'body') return `${field} is required`;
      if (field === 'body' && (iss.expected === 'object' || iss.expected === 'record')) return `body must be a JSON object, not ${kindOf(iss.input)}`;
      return `${field} must be ${KINDS[iss.expected] ?? iss.expected}`;
    case 'unrecognized_keys': {
      const where = field === 'body' ? '' : ` in ${field}`;
      return `unknown field${iss.keys.length > 1 ? 's' : ''}${where}: ${iss.keys.join(', ')}`;
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
  const r = schema.safeParse(body, { error: messageFor });
  if (r.success) return r.data;
  throw new InputError([...new Set(r.error.issues.map((i) => i.message))].slice(0, 5).join('; '));
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
