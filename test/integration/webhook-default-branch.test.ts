import { createWebhookActivities } from '../../activities/webhook-activities';
import { createDb, type Db } from '../../core/db';
import { SecretBox } from '../../core/secret-box';
import { api, createPrivateRepo, createTenantWithAdmin } from '../helpers/api-client';
import { platformInfo } from '../harness/platform-info';

// Issue 15 item 5: a webhook payload's repository.default_branch is the repository's default branch
// also where the worker cannot read HEAD (the repository on another storage node): the copy recorded
// beside the repository's row, not a guessed 'main'.

let db: Db;

beforeAll(() => {
  db = createDb(platformInfo().databaseUrl, 2);
});

afterAll(async () => {
  await db?.end();
});

test("a repository's recorded default branch names it in payloads when its HEAD cannot be read here", async () => {
  const owner = await createTenantWithAdmin();
  const repo = await createPrivateRepo(owner, 'hookbranch');
  const hook = await api('POST', `/api/v1/repos/${owner.tenant}/${repo}/webhooks`, {
    token: owner.token,
    body: { url: 'http://127.0.0.1:9/hook', secret: 'x'.repeat(16), events: ['deployment_status'] },
  });
  expect(hook.status).toBe(201);
  const row = (await db.query('SELECT r.id, r.tenant_id FROM repos r JOIN tenants t ON t.id = r.tenant_id WHERE t.name = $1 AND r.name = $2', [owner.tenant, repo])).rows[0];
  await db.query(`UPDATE repos SET default_branch = 'trunk' WHERE id = $1`, [row.id]);

  // reposDir where no repository is: HEAD cannot be read, as on a worker beside another storage node.
  const activities = createWebhookActivities({
    db,
    reposDir: '/nonexistent/dotgit-repos',
    publicUrl: 'http://dotgit.test',
    secrets: new SecretBox('test-secret', 'webhook-secret'),
    allowHosts: ['127.0.0.1'],
    timeoutMs: 1000,
  });
  const planned = await activities.planWebhookEvent({
    tenantId: Number(row.tenant_id),
    repoId: Number(row.id),
    event: { event: 'deployment_status', deployId: 'deploy:x', environment: 'prod', ref: 'refs/heads/trunk', sha: 'a'.repeat(40), state: 'success', creator: owner.username },
  });
  expect(planned).not.toBeNull();
  expect(JSON.parse(planned!.body).repository).toMatchObject({ full_name: `${owner.tenant}/${repo}`, default_branch: 'trunk' });
});
