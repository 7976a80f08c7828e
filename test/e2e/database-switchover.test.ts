import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ROOT } from '../../infra/root';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin } from '../helpers/api-client';

// The planned switchover's endpoint through the real gateway and api (ADR 0027): platform admins
// only, the body checked, and a clear 409 where no Patroni runs the database (the shared platform
// runs one embedded Postgres; the drill itself is in test/integration/postgres-ha.test.ts).

test('POST /api/v1/admin/database/switchover: a tenant admin gets 403, a bad candidate 400, and without Patroni the platform admin gets 409 saying so', async () => {
  const tenant = await createTenantWithAdmin();
  const denied = await api('POST', '/api/v1/admin/database/switchover', { token: tenant.token, body: {} });
  expect(denied.status).toBe(403);

  const admin = platformInfo().adminToken;
  const bad = await api('POST', '/api/v1/admin/database/switchover', { token: admin, body: { candidate: '../pg-2' } });
  expect(bad.status).toBe(400);
  expect(bad.body.error.message).toMatch(/candidate must be the name of a Patroni member/);

  const unknownField = await api('POST', '/api/v1/admin/database/switchover', { token: admin, body: { leader: 'pg-1' } });
  expect(unknownField.status).toBe(400);

  const none = await api('POST', '/api/v1/admin/database/switchover', { token: admin, body: {} });
  expect(none.status).toBe(409);
  expect(none.body.error.message).toMatch(/not run by Patroni here \(DOTGIT_PATRONI_URLS is unset\)/);
});

test('dotgit db switchover: the same request from the command line; without Patroni it exits 1 with the API\'s message', () => {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'cli', 'bin.cjs'), 'db', 'switchover', '--candidate', 'pg-2'], {
    env: { ...process.env, DOTGIT_URL: platformInfo().gatewayUrl, DOTGIT_TOKEN: platformInfo().adminToken },
    encoding: 'utf8',
  });
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/not run by Patroni here \(DOTGIT_PATRONI_URLS is unset\)/);
});
