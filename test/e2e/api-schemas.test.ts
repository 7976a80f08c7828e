import { z } from 'zod';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, type TenantFixture } from '../helpers/api-client';
import { API_ROUTES, type ApiRoute } from '../../api/schemas/routes';
import { API_INDEX } from '../../api/app';

// Issue 15 items 1 and 6: every route refuses a body that breaks its schema with a 400 naming the
// field, before anything happens; the OpenAPI document and the API's links are served.

let acme: TenantFixture;

beforeAll(async () => {
  acme = await createTenantWithAdmin();
});

/** A path of the route with every parameter filled with a value its schema takes. */
function pathOf(r: ApiRoute): string {
  const values: Record<string, string> = { owner: acme.tenant, repo: 'no-such-repo', tenant: acme.tenant, id: '1', branch: 'main', username: 'someone', name: 'TOKEN', sha: 'a'.repeat(40), path: 'out/a.txt', shard: '3', delivery: '00000000-0000-4000-8000-000000000000' };
  return `/api/v1${r.path.replace(/[:*](\w+)/g, (_, p: string) => encodeURIComponent(values[p]))}`;
}

/** A value of another JSON type than the property's schema asks for. */
function wrongValue(schema: { type?: string | string[]; enum?: unknown[] }): unknown {
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  if (type === 'boolean' || type === 'array' || type === 'object' || type === 'integer' || type === 'number') return 'not-that';
  return 12345; // strings, enums of strings, and whatever the schema leaves open are given a number
}

const withBody = API_ROUTES.filter((r) => r.body);

test('the table has bodies to check', () => {
  expect(withBody.length).toBeGreaterThan(15);
});

test.each(withBody.map((r) => [`${r.method.toUpperCase()} ${r.path}`, r] as const))('%s refuses a body breaking its schema with 400 naming the field', async (_name, r) => {
  const admin = platformInfo().adminToken;
  const send = (body: unknown) => api(r.method.toUpperCase(), pathOf(r), { token: admin, body });
  const expect400 = async (body: unknown, names: RegExp) => {
    const res = await send(body);
    expect({ status: res.status, body }).toEqual({ status: 400, body });
    expect(res.body.error.code).toBe('invalid_input');
    expect(res.body.error.message).toMatch(names);
  };
  await expect400([], /body must be a JSON object/);
  await expect400({ zzUnknownField: true }, /zzUnknownField/);
  const json = z.toJSONSchema(r.body!, { io: 'input', unrepresentable: 'any' }) as { properties?: Record<string, { type?: string }> };
  for (const [field, schema] of Object.entries(json.properties ?? {})) {
    if (field === 'url') continue; // checked by the webhook service (scheme, credentials, address), named there too
    await expect400({ [field]: wrongValue(schema) }, new RegExp(`\\b${field}\\b`));
  }
});

test('query parameters and path parameters are checked by schema too, naming them', async () => {
  const list = await api('GET', `/api/v1/repos/${acme.tenant}/x/runs?status=exploded`, { token: acme.token });
  expect(list.status).toBe(400);
  expect(list.body.error.message).toMatch(/query parameter status/);
  const twice = await api('GET', `/api/v1/runs/x/logs?job=a&job=b`, { token: acme.token });
  expect(twice.status).toBe(400);
  expect(twice.body.error.message).toMatch(/query parameter job must be given once/);
  const badOwner = await api('GET', `/api/v1/repos/${encodeURIComponent('-bad')}/x`, { token: acme.token });
  expect(badOwner.status).toBe(400);
  expect(badOwner.body.error.message).toMatch(/path parameter owner/);
});

test('GET /api/v1 answers the links (anonymously too), the OpenAPI document among them', async () => {
  for (const token of [undefined, acme.token]) {
    const index = await api('GET', '/api/v1', { token });
    expect(index.status).toBe(200);
    expect(index.body).toEqual(API_INDEX);
  }
  const doc = await api('GET', API_INDEX.links.openapi);
  expect(doc.status).toBe(200);
  expect(doc.body.openapi).toBe('3.1.0');
  expect(Object.keys(doc.body.paths)).toContain('/repos/{owner}/{repo}');
  // Links without placeholders answer.
  const admin = platformInfo().adminToken;
  for (const link of [API_INDEX.links.self, API_INDEX.links.backups, API_INDEX.links.health]) expect((await api('GET', link, { token: admin })).status).toBe(200);
});
