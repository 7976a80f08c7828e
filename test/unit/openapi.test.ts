import { promises as fs } from 'node:fs';
import path from 'node:path';
import { validate } from '@readme/openapi-parser';
import { createApiApp, type ApiServices } from '../../api/app';
import type { IdempotencyStore } from '../../api/idempotency';
import { OPENAPI_PATH, openApiDocument, openApiText } from '../../api/openapi';
import { API_ROUTES, openApiPath } from '../../api/schemas/routes';
import { VALIDATOR } from '../../api/validation';
import { createLogger } from '../../core/logger';

// Issue 15 item 1: the OpenAPI 3.1 document is generated from the schemas, committed, valid, and
// describes exactly the routes the api serves.

interface Layer {
  rawPath?: string;
  route?: { path: string; methods: Record<string, boolean>; stack: { handle: { [VALIDATOR]?: true } }[] };
  handle: { stack?: Layer[] };
}

/** `METHOD path` of every handler route under /api/v1 (the validators' own route layers left out). */
function servedRoutes(): string[] {
  const app = createApiApp({} as ApiServices, { log: createLogger('test', 'silent'), internalSecret: 'x', healthChecks: {}, idempotencyKeys: {} as IdempotencyStore });
  const found: string[] = [];
  const walk = (stack: Layer[], prefix: string) => {
    for (const layer of stack) {
      if (layer.route) {
        if (layer.route.stack.every((l) => l.handle[VALIDATOR])) continue;
        for (const [method, on] of Object.entries(layer.route.methods)) if (on && method !== '_all') found.push(`${method} ${prefix}${layer.route.path}`);
      } else if (layer.handle.stack && typeof layer.rawPath === 'string') {
        walk(layer.handle.stack, prefix + layer.rawPath);
      }
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack, '');
  return found.filter((r) => r.split(' ')[1].startsWith('/api/v1')).map((r) => r.replace(' /api/v1/', ' /').replace(/ \/api\/v1$/, ' /'));
}

test('every route the api serves is in the route table, and every route in the table is served', () => {
  const served = new Set(servedRoutes());
  const documented = new Set(API_ROUTES.map((r) => `${r.method} ${r.path}`));
  expect(served.size).toBeGreaterThan(40);
  expect([...served].filter((r) => !documented.has(r))).toEqual([]);
  expect([...documented].filter((r) => !served.has(r))).toEqual([]);
});

test('the document has one operation per route of the table, with its path parameters', () => {
  const doc = openApiDocument();
  const operations = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m} ${p}`));
  expect(operations.sort()).toEqual(API_ROUTES.map((r) => `${r.method} ${openApiPath(r.path)}`).sort());
  const patch = doc.paths['/repos/{owner}/{repo}'].patch as { parameters: { name: string; in: string }[]; requestBody: { content: Record<string, { schema: { properties: Record<string, unknown> } }> } };
  expect(patch.parameters.map((p) => `${p.in}:${p.name}`)).toEqual(['path:owner', 'path:repo']);
  expect(Object.keys(patch.requestBody.content['application/json'].schema.properties)).toEqual(['defaultBranch']);
});

test('the document is valid OpenAPI 3.1 (@readme/openapi-parser)', async () => {
  const doc = openApiDocument();
  expect(doc.openapi).toBe('3.1.0');
  const result = await validate(structuredClone(doc) as never);
  expect(result).toMatchObject({ valid: true, specification: 'OpenAPI' });
  // The validator does refuse a broken one: a path parameter of the template left undeclared.
  const broken = structuredClone(doc) as { paths: Record<string, Record<string, { parameters: { name: string }[] }>> };
  const patch = broken.paths['/repos/{owner}/{repo}'].patch;
  patch.parameters = patch.parameters.filter((p) => p.name !== 'owner');
  expect((await validate(broken as never)).valid).toBe(false);
});

test('the committed docs/openapi.json is the one the schemas generate (npm run openapi refreshes it)', async () => {
  const committed = await fs.readFile(path.resolve(__dirname, '..', '..', OPENAPI_PATH), 'utf8');
  expect(committed).toBe(openApiText());
});
