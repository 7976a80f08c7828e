import { z } from 'zod';
import { errorBody } from './schemas/common';
import { API_ROUTES, openApiPath, type ApiRoute } from './schemas/routes';

/**
 * The OpenAPI 3.1 document of the REST API, generated from the route table and its zod schemas
 * (zod's own JSON Schema output, draft 2020-12: OpenAPI 3.1's dialect). Requests are described as
 * they are read (`io: input`: defaults optional), answers as they are sent. Committed as
 * docs/openapi.json (`npm run openapi`), served at `/api/v1/openapi.json`.
 */

export const OPENAPI_PATH = 'docs/openapi.json';

type JsonSchema = Record<string, unknown>;

/** Named schemas (`.meta({ id })`, the root too) go to components and are referenced from where they are used. */
function toSchema(schema: z.ZodType, io: 'input' | 'output', components: Record<string, JsonSchema>): JsonSchema {
  const generated = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any', reused: 'inline', cycles: 'ref' });
  // Named schemas come as `$defs`; in the document they live in components.
  const { $schema: _, $defs, ...rest } = JSON.parse(JSON.stringify(generated).replaceAll('"#/$defs/', '"#/components/schemas/')) as JsonSchema & { $defs?: Record<string, JsonSchema> };
  for (const [id, def] of Object.entries($defs ?? {})) components[id] = def;
  return rest;
}

/** One parameter per property of a path or query schema. */
function parameters(schema: z.ZodObject | undefined, where: 'path' | 'query', components: Record<string, JsonSchema>) {
  if (!schema) return [];
  const json = toSchema(schema, 'input', components) as { properties?: Record<string, JsonSchema>; required?: string[] };
  return Object.entries(json.properties ?? {}).map(([name, s]) => {
    const { description, ...rest } = s;
    return { name, in: where, required: where === 'path' || (json.required ?? []).includes(name), schema: rest, ...(description ? { description } : {}) };
  });
}

/** `get /repos/:owner/:repo/runs` → `getReposOwnerRepoRuns`; `/` is `Index`. */
function operationId(r: ApiRoute): string {
  const words = r.path.split(/[^A-Za-z0-9]+/).filter(Boolean);
  return r.method + (words.length ? words : ['index']).map((w) => w[0].toUpperCase() + w.slice(1)).join('');
}

function operation(r: ApiRoute, components: Record<string, JsonSchema>) {
  const responses: Record<string, unknown> = {};
  for (const [status, answer] of Object.entries(r.responses)) {
    const type = answer.contentType ?? (answer.schema ? 'application/json' : undefined);
    responses[status] = {
      description: answer.description,
      ...(type ? { content: { [type]: answer.schema ? { schema: toSchema(answer.schema, 'output', components) } : { schema: type === 'application/json' ? { type: 'object' } : { type: 'string' } } } } : {}),
    };
  }
  // Every operation can fail with the one error body (core/errors.ts codes).
  responses.default = { description: 'an error: 400 invalid input (naming the field), 401, 403, 404, 409, 413, 415, 422, 429, 503', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
  return {
    operationId: operationId(r),
    summary: r.summary,
    tags: [r.tag],
    ...(r.anonymous ? { security: [{}, { bearer: [] }] } : {}),
    parameters: [...parameters(r.params, 'path', components), ...parameters(r.query, 'query', components)],
    // A write without a body is read as `{}`: the body is required only where `{}` does not do.
    ...(r.body ? { requestBody: { required: !r.body.safeParse({}).success, content: { 'application/json': { schema: toSchema(r.body, 'input', components) } } } } : {}),
    responses,
  };
}

/** The document, with `serverUrl` as its one server (the gateway's `/api/v1`). */
export function openApiDocument(serverUrl = '/api/v1') {
  const components: Record<string, JsonSchema> = {};
  toSchema(errorBody, 'output', components);
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of API_ROUTES) (paths[openApiPath(r.path)] ??= {})[r.method] = operation(r, components);
  return {
    openapi: '3.1.0',
    info: {
      title: 'dotgit REST API',
      version: 'v1',
      description: 'Self-hosted git hosting and CI/CD. Authenticate with `Authorization: Bearer <token>`. Every POST honours `Idempotency-Key`. Errors are `{"error": {"code", "message", "requestId"}}`.',
    },
    servers: [{ url: serverUrl }],
    security: [{ bearer: [] }],
    tags: [...new Set(API_ROUTES.map((r) => r.tag))].map((name) => ({ name })),
    paths,
    components: {
      schemas: Object.fromEntries(Object.entries(components).sort(([a], [b]) => a.localeCompare(b))),
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'an API token (dg_…) or a JWT from POST /oauth/token' } },
    },
  };
}

/** The committed file's text: stable key order, two-space indent, final newline. */
export function openApiText(): string {
  return `${JSON.stringify(openApiDocument(), null, 2)}\n`;
}
