import { z } from 'zod';
import { isValidName } from '../../core/names';

/**
 * Schemas every part of the API shares: path parameters, the error body, links. The request and
 * response schemas of api/schemas/* are the API's one description: the api validates with them at
 * the edge (api/schemas/routes.ts), the OpenAPI document is generated from them (api/openapi.ts),
 * and the CLI and SDK take their types from them. No module here imports a service.
 */

/** CONTRACT "git" names (tenants, repositories, users) as JSON Schema states them; the check itself is core/names. */
export const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$';

/** A name field, with core/names' rule and message (no "..", no ".git" ending besides the pattern). */
export const nameField = (field: string) => {
  const error = `${field} must match ${NAME_PATTERN}, contain no "..", and not end in ".git"`;
  return z.string({ error }).regex(new RegExp(NAME_PATTERN), { error }).refine(isValidName, { error });
};

/** A timestamp as the API answers it (JSON of a Date: ISO 8601 in UTC). */
export const timestamp = z.iso.datetime().meta({ description: 'ISO 8601 date-time (UTC)' });

export const errorBody = z
  .object({
    error: z.object({
      code: z.string().meta({ description: 'stable code: invalid_input, unauthenticated, forbidden, not_found, conflict, …' }),
      message: z.string(),
      requestId: z.string().optional(),
    }),
  })
  .meta({ id: 'Error' });

export const ownerRepoParams = z.object({ owner: nameField('owner'), repo: nameField('repo') });

/** Ids of runs and deploys (`pipeline:acme:web:…`, `deploy:acme:web:production:…`). */
const RUN_ID_MESSAGE = 'id must be a run id or deploy id of 1 to 300 characters';
export const runIdParam = z.string({ error: RUN_ID_MESSAGE }).min(1, { error: RUN_ID_MESSAGE }).max(300, { error: RUN_ID_MESSAGE }).meta({ description: 'a run id (or deploy id) as the push or POST answered it' });

export const links = z.record(z.string(), z.string()).meta({ description: 'related URLs by name' });

/** An empty JSON object: writes whose body carries nothing (approve/cancel may also send none). */
export const emptyBody = z.strictObject({});

const wholeNumber = (name: string) => z.string().regex(/^\d{1,16}$/, { error: `${name} must be a whole number` }).optional();

/** `?after=&limit=` of a list read a page at a time by id (audit, repositories, tokens); the answer's `next` is the next `after`. */
export const pageQuery = z.object({
  after: wholeNumber('after').meta({ description: 'the id to continue after (`next` of the previous page)' }),
  limit: wholeNumber('limit').meta({ description: '1 to 1000, default 100' }),
});

export const nextPage = z.number().int().nullable().meta({ description: 'the `after` of the next page; null on the last' });
