import { platformInfo } from '../harness/platform-info';
import { api, createPrivateRepo, createTenantWithAdmin, uniqueName, type TenantFixture } from '../helpers/api-client';
import { deployOnlyPipeline } from '../helpers/deploy-pipeline';
import { cloneUrl, git, localRepo } from '../helpers/git';

// Issue 10, defect 9 (api part): request bodies checked by schema (a non-object body, a wrong type
// or an unknown field is a 400 naming it, and nothing is changed), a deploy to an environment the
// pipeline file lacks refused at once, and no answer that lets an outsider tell which tenants and
// user names exist.

const PIPELINE = deployOnlyPipeline({ staging: {}, production: { approval: true } });

let acme: TenantFixture;
let other: TenantFixture;
let repo: string;

beforeAll(async () => {
  [acme, other] = await Promise.all([createTenantWithAdmin(), createTenantWithAdmin()]);
  repo = await createPrivateRepo(acme, 'val');
  const work = await localRepo({ '.dotgit/pipeline.yml': PIPELINE });
  expect((await git(['push', cloneUrl(acme.tenant, repo, acme.token), 'main'], work)).code).toBe(0);
});

async function expect400(res: { status: number; body: any }, message: RegExp) {
  expect(res.status).toBe(400);
  expect(res.body.error.code).toBe('invalid_input');
  expect(res.body.error.message).toMatch(message);
}

test('PUT protections with a body that is not an object, a wrong type or an unknown field is 400 naming it, and protects nothing', async () => {
  const put = (body: unknown) => api('PUT', `/api/v1/repos/${acme.tenant}/${repo}/protections/main`, { token: acme.token, body });
  await expect400(await put([]), /body must be a JSON object/);
  await expect400(await put([{ allowForcePush: true }]), /body must be a JSON object/);
  await expect400(await put({ allowForcePush: 'yes' }), /allowForcePush/);
  await expect400(await put({ allowDeletion: 1 }), /allowDeletion/);
  await expect400(await put({ pushers: 'alice' }), /pushers/);
  await expect400(await put({ pushers: ['ok', 7] }), /pushers\[1\]/);
  // Valid JSON that is no object, and broken JSON, are told apart (both invalid_input).
  const raw = (text: string) =>
    fetch(`${platformInfo().gatewayUrl}/api/v1/repos/${acme.tenant}/${repo}/protections/main`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${acme.token}`, 'content-type': 'application/json' },
      body: text,
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));
  await expect400(await raw('"main"'), /body must be a JSON object, not a string/);
  await expect400(await raw('null'), /body must be a JSON object, not null/);
  await expect400(await raw('{"allowForcePush": tru'), /request body is not valid JSON/);
  // Branch patterns follow git's ref-name rules.
  for (const branch of ['a..b', 'a/.x', 'x.lock'])
    await expect400(await api('PUT', `/api/v1/repos/${acme.tenant}/${repo}/protections/${branch}`, { token: acme.token, body: {} }), /branch must be/);
  // A misspelt field is refused, not silently ignored (the protection would lack what was meant).
  await expect400(await put({ allowForcepush: true }), /allowForcepush/);
  const list = await api('GET', `/api/v1/repos/${acme.tenant}/${repo}/protections`, { token: acme.token });
  expect(list.status).toBe(200);
  expect(list.body.protections).toEqual([]);
  // A good body still works, and an empty object is "nothing allowed".
  expect((await put({})).body).toEqual({ pattern: 'main', allowForcePush: false, allowDeletion: false });
});

test('every api body is checked by schema: non-objects, wrong types and unknown fields are 400 naming the field', async () => {
  const admin = platformInfo().adminToken;
  const r = `/api/v1/repos/${acme.tenant}/${repo}`;
  await expect400(await api('POST', '/api/v1/tenants', { token: admin, body: [] }), /body must be a JSON object/);
  await expect400(await api('POST', '/api/v1/tenants', { token: admin, body: { name: ['x'] } }), /name/);
  await expect400(await api('POST', '/api/v1/tenants', { token: admin, body: { name: uniqueName('t'), plan: 'gold' } }), /plan/);
  await expect400(await api('POST', `/api/v1/tenants/${acme.tenant}/users`, { token: acme.token, body: [] }), /body must be a JSON object/);
  await expect400(await api('POST', `/api/v1/tenants/${acme.tenant}/users`, { token: acme.token, body: { username: uniqueName('u'), admin: true } }), /admin/);
  await expect400(await api('POST', '/api/v1/repos', { token: acme.token, body: [acme.tenant, 'x'] }), /body must be a JSON object/);
  await expect400(await api('POST', '/api/v1/repos', { token: acme.token, body: { owner: acme.tenant, name: uniqueName('r'), visibility: 'private', private: true } }), /private/);
  await expect400(await api('POST', `${r}/runs`, { token: acme.token, body: [] }), /body must be a JSON object/);
  await expect400(await api('POST', `${r}/runs`, { token: acme.token, body: { ref: 'main', branch: 'main' } }), /branch/);
  await expect400(await api('POST', `${r}/deploys`, { token: acme.token, body: [] }), /body must be a JSON object/);
  await expect400(await api('POST', `${r}/deploys`, { token: acme.token, body: { ref: 'main', environment: 'staging', force: true } }), /force/);
  await expect400(await api('PUT', `${r}/secrets/TOKEN`, { token: acme.token, body: [] }), /body must be a JSON object/);
  await expect400(await api('PUT', `${r}/secrets/TOKEN`, { token: acme.token, body: { value: 5 } }), /value/);
  await expect400(await api('PUT', `${r}/collaborators/${other.username}`, { token: acme.token, body: [] }), /body must be a JSON object/);
  await expect400(await api('PUT', `${r}/collaborators/${other.username}`, { token: acme.token, body: { access: 'owner' } }), /access/);
  await expect400(await api('POST', `${r}/webhooks`, { token: acme.token, body: [] }), /body must be a JSON object/);
  await expect400(await api('POST', `${r}/webhooks`, { token: acme.token, body: { url: 'https://example.com/h', secret: 's', events: 'push' } }), /events/);
  await expect400(await api('POST', '/api/v1/backups', { token: admin, body: [] }), /body must be a JSON object/);
  await expect400(await api('POST', '/api/v1/restores', { token: admin, body: { at: new Date().toISOString(), repos: [1] } }), /repos/);
  // Nothing of the above was created.
  expect((await api('GET', `${r}/runs`, { token: acme.token })).body.runs).toEqual([]);
  expect((await api('GET', `${r}/deploys`, { token: acme.token })).body.deploys).toEqual([]);
  expect((await api('GET', `${r}/secrets`, { token: acme.token })).body.secrets).toEqual([]);
  expect((await api('GET', `${r}/webhooks`, { token: acme.token })).body.webhooks).toEqual([]);
  expect((await api('GET', `${r}/collaborators`, { token: acme.token })).body.collaborators).toEqual([]);
});

test('a deploy to an environment the pipeline file does not define is 400 naming it and the ones it defines; nothing is queued', async () => {
  const res = await api('POST', `/api/v1/repos/${acme.tenant}/${repo}/deploys`, { token: acme.token, body: { ref: 'main', environment: 'qa' } });
  await expect400(res, /"qa"/);
  expect(res.body.error.message).toMatch(/production, staging/);
  expect((await api('GET', `/api/v1/repos/${acme.tenant}/${repo}/deploys`, { token: acme.token })).body.deploys).toEqual([]);
  // A ref without a pipeline file defines no environment at all.
  const bare = await createPrivateRepo(acme, 'nofile');
  const work = await localRepo({ 'README.md': 'no pipeline here\n' });
  expect((await git(['push', cloneUrl(acme.tenant, bare, acme.token), 'main'], work)).code).toBe(0);
  await expect400(await api('POST', `/api/v1/repos/${acme.tenant}/${bare}/deploys`, { token: acme.token, body: { ref: 'main', environment: 'staging' } }), /no \.dotgit\/pipeline\.yml/);
});

test('creating a user in a tenant the caller does not administer is the same 404 whether or not the tenant exists', async () => {
  const body = { username: uniqueName('u'), role: 'admin' };
  const existing = await api('POST', `/api/v1/tenants/${acme.tenant}/users`, { token: other.token, body });
  const ghost = uniqueName('ghost');
  const missing = await api('POST', `/api/v1/tenants/${ghost}/users`, { token: other.token, body });
  expect(existing.status).toBe(404);
  expect(missing.status).toBe(404);
  expect(existing.body.error.message).toBe(`tenant ${acme.tenant} not found`);
  expect(missing.body.error.message).toBe(`tenant ${ghost} not found`);
  expect(existing.body.error.code).toBe(missing.body.error.code);
});

test('a user name taken in another tenant is refused with the same 409 as one taken in the own tenant, naming no tenant', async () => {
  const mine = uniqueName('u');
  expect((await api('POST', `/api/v1/tenants/${acme.tenant}/users`, { token: acme.token, body: { username: mine } })).status).toBe(201);
  const takenHere = await api('POST', `/api/v1/tenants/${acme.tenant}/users`, { token: acme.token, body: { username: mine } });
  const takenElsewhere = await api('POST', `/api/v1/tenants/${acme.tenant}/users`, { token: acme.token, body: { username: other.username } });
  expect(takenHere.status).toBe(409);
  expect(takenElsewhere.status).toBe(409);
  expect(takenElsewhere.body.error.message).toBe(takenHere.body.error.message.replace(mine, other.username));
  expect(takenElsewhere.body.error.message).not.toContain(other.tenant);
  expect(takenElsewhere.body.error.message).toMatch(/not available/);
});
