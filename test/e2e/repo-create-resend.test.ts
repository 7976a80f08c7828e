import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, uniqueName, type TenantFixture } from '../helpers/api-client';

// Issue 13, ADR 0027 "A resent repository creation": a creation whose answer was lost (its commit's,
// in a database failover: the client was told 503 and sends it again) leaves exactly what a
// creation whose answer arrived leaves — the row, its repo.create audit entry, the bare repository.
// So the resend here follows a creation that succeeded: the same request by the same user within
// the window answers 201 with the same repository, and nothing is made twice. Anyone else, other
// settings, or later: 409 as before.

let acme: TenantFixture;
let member: string;
let db: pg.Pool;

beforeAll(async () => {
  db = new pg.Pool({ connectionString: platformInfo().databaseUrl, max: 2 });
  acme = await createTenantWithAdmin();
  const username = uniqueName('m');
  const admin = platformInfo().adminToken;
  expect((await api('POST', `/api/v1/tenants/${acme.tenant}/users`, { token: admin, body: { username, role: 'member' } })).status).toBe(201);
  const tok = await api<{ token: string }>('POST', '/api/v1/tokens', { token: admin, body: { username, scopes: ['read', 'write'] } });
  expect(tok.status).toBe(201);
  member = tok.body.token;
});

afterAll(async () => {
  await db.end();
});

async function counts(name: string): Promise<{ rows: number; audited: number }> {
  const rows = (await db.query('SELECT count(*)::int AS n FROM repos r JOIN tenants t ON t.id = r.tenant_id WHERE t.name = $1 AND r.name = $2', [acme.tenant, name])).rows[0].n;
  const audited = (await db.query(`SELECT count(*)::int AS n FROM audit_log WHERE action = 'repo.create' AND target = $1`, [`${acme.tenant}/${name}`])).rows[0].n;
  return { rows, audited };
}

test('the same creation sent again by its creator (its first answer lost) answers 201 with the same repository, made once; with an Idempotency-Key too', async () => {
  const name = uniqueName('resend');
  const body = { owner: acme.tenant, name, visibility: 'private' };
  const first = await api('POST', '/api/v1/repos', { token: acme.token, body });
  expect(first.status).toBe(201);
  const again = await api('POST', '/api/v1/repos', { token: acme.token, body });
  expect([again.status, again.body]).toEqual([201, first.body]);
  // A client that sends an Idempotency-Key gets the same: its key was released with the 503, so the
  // resend runs again and meets the repository it made.
  const keyed = await api('POST', '/api/v1/repos', { token: acme.token, body, headers: { 'idempotency-key': randomUUID() } });
  expect([keyed.status, keyed.body]).toEqual([201, first.body]);
  expect(await counts(name)).toEqual({ rows: 1, audited: 1 });
  expect((await api('GET', `/api/v1/repos/${acme.tenant}/${name}`, { token: acme.token })).body).toEqual(first.body);
});

test('not the same creation: another user of the tenant, other settings, or once the window has passed answer 409 as before', async () => {
  const name = uniqueName('taken');
  const body = { owner: acme.tenant, name, visibility: 'private' };
  expect((await api('POST', '/api/v1/repos', { token: acme.token, body })).status).toBe(201);
  const other = await api('POST', '/api/v1/repos', { token: member, body });
  expect([other.status, other.body.error?.message]).toEqual([409, `repository ${acme.tenant}/${name} already exists`]);
  const settings = await api('POST', '/api/v1/repos', { token: acme.token, body: { ...body, visibility: 'public' } });
  expect(settings.status).toBe(409);
  // Made before the window (CREATE_RESEND_SECONDS, 300 s): a name in use, not a resend.
  await db.query(`UPDATE repos SET created_at = created_at - interval '301 seconds' WHERE name = $1`, [name]);
  expect((await api('POST', '/api/v1/repos', { token: acme.token, body })).status).toBe(409);
  expect(await counts(name)).toEqual({ rows: 1, audited: 1 });
});
