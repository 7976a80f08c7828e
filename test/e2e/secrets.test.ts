import { Client } from 'pg';
import { tenantDatabaseUrl } from '../helpers/shard-databases';
import { api, createPrivateRepo, createTenantWithAdmin, waitForRun, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom } from '../helpers/git';

// Pipeline secrets on real parts: set write-only through the API, sealed in Postgres, injected into
// the job that names them, and masked in its logs in plain, base64 and JSON-escaped forms.

const SECRET = 'p@ss"w0rd/+x-9f3c2a';
const PIPELINE = `
jobs:
  use:
    secrets: [DEPLOY_TOKEN, UNSET_ONE]
    steps:
      - name: print
        run: |
          test "$DEPLOY_TOKEN" = '${SECRET.replace(/'/g, "'\\''")}' && echo "injected: yes"
          echo "plain: $DEPLOY_TOKEN"
          echo "base64: $(printf '%s' "$DEPLOY_TOKEN" | base64 -w0)"
          echo "json: {\\"token\\":\\"$(printf '%s' "$DEPLOY_TOKEN" | sed 's/"/\\\\"/g')\\"}"
          echo "unset: [$UNSET_ONE]"
  other:
    steps:
      - name: no-secrets
        run: echo "other sees [$DEPLOY_TOKEN]"
`;

let owner: TenantFixture;
let repo: string;

beforeAll(async () => {
  owner = await createTenantWithAdmin();
  repo = await createPrivateRepo(owner, 'sec');
});

const secretPath = (name: string) => `/api/v1/repos/${owner.tenant}/${repo}/secrets/${name}`;

test('a secret is set write-only and stored sealed', async () => {
  const put = await api('PUT', secretPath('DEPLOY_TOKEN'), { token: owner.token, body: { value: SECRET } });
  expect(put.status).toBe(204);
  const list = await api('GET', `/api/v1/repos/${owner.tenant}/${repo}/secrets`, { token: owner.token });
  expect(list.status).toBe(200);
  expect(list.body.secrets).toEqual([expect.objectContaining({ name: 'DEPLOY_TOKEN', environment: null, updatedBy: owner.username })]);
  expect(list.text).not.toContain(SECRET);
  // There is no way to read a value back.
  expect((await api('GET', secretPath('DEPLOY_TOKEN'), { token: owner.token })).status).toBe(404);
  // The tenant's database: the platform's own, or its shard's under DOTGIT_TEST_SHARD_DATABASES.
  const pg = new Client({ connectionString: await tenantDatabaseUrl(owner.tenant) });
  await pg.connect();
  try {
    const rows = (await pg.query("SELECT value_enc FROM secrets WHERE name = 'DEPLOY_TOKEN'")).rows;
    expect(rows.length).toBeGreaterThan(0);
    for (const r of rows) expect(r.value_enc).not.toContain('w0rd');
  } finally {
    await pg.end();
  }
});

test('bad secret requests get clear 4xx answers', async () => {
  const bad = async (name: string, body: unknown, status: number, message: RegExp, token = owner.token) => {
    const r = await api('PUT', secretPath(name), { token, body });
    expect(r.status).toBe(status);
    expect(r.body.error.message).toMatch(message);
  };
  await bad('1BAD', { value: 'x' }, 400, /environment variable names/);
  await bad('DOTGIT_COMMIT', { value: 'x' }, 400, /reserved/);
  await bad('OK_NAME', { value: 42 }, 400, /value must be a string/);
  await bad('OK_NAME', { value: 'x'.repeat(64 * 1024 + 1) }, 400, /larger than/);
  await bad('OK_NAME', { value: 'x', environment: '../prod' }, 400, /environment must be/);
  const read = await api<{ token: string }>('POST', '/api/v1/tokens', { token: owner.token, body: { scopes: ['read'] } });
  await bad('OK_NAME', { value: 'x' }, 403, /write/, read.body.token);
  const stranger = await createTenantWithAdmin();
  await bad('OK_NAME', { value: 'x' }, 404, /not found/, stranger.token);
  expect((await api('PUT', secretPath('OK_NAME'), { body: { value: 'x' } })).status).toBe(401);
});

test('the job that names a secret gets it, and its logs mask every form of it', async () => {
  const work = await localRepo({ '.dotgit/pipeline.yml': PIPELINE });
  const push = await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work);
  expect(push.code).toBe(0);
  const [runId] = runIdsFrom(push.stderr);
  const run = await waitForRun(runId, owner.token);
  expect(run.status).toBe('success');
  const logs = await api('GET', `/api/v1/runs/${encodeURIComponent(runId)}/logs?job=use&step=print`, { token: owner.token });
  expect(logs.status).toBe(200);
  expect(logs.text).toContain('injected: yes');
  expect(logs.text).toContain('plain: ***');
  expect(logs.text).toContain('base64: ***');
  expect(logs.text).toContain('json: {"token":"***"}');
  expect(logs.text).not.toContain(SECRET);
  expect(logs.text).not.toContain(Buffer.from(SECRET).toString('base64'));
  expect(logs.text).not.toContain(JSON.stringify(SECRET).slice(1, -1));
  expect(logs.text).toMatch(/secret UNSET_ONE is not set/);
  expect(logs.text).toContain('unset: []');
  const other = await api('GET', `/api/v1/runs/${encodeURIComponent(runId)}/logs?job=other&step=no-secrets`, { token: owner.token });
  expect(other.text).toContain('other sees []');
});

test('a deleted secret is no longer listed', async () => {
  expect((await api('PUT', secretPath('GONE'), { token: owner.token, body: { value: 'temporary-value' } })).status).toBe(204);
  expect((await api('DELETE', secretPath('GONE'), { token: owner.token })).status).toBe(204);
  const list = await api('GET', `/api/v1/repos/${owner.tenant}/${repo}/secrets`, { token: owner.token });
  expect(list.body.secrets.map((s: { name: string }) => s.name)).not.toContain('GONE');
});
