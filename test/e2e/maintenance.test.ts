import { readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { createDb } from '../../core/db';
import { maintenanceWorkflowId, storageQueue } from '../../core/run-types';
import { MAINTENANCE_SCHEDULE } from '../../temporal-config/schedules';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, uniqueName } from '../helpers/api-client';
import { cloneUrl, git, localRepo, writeFiles } from '../helpers/git';

// The maintenance Schedule exists in Temporal, and a sweep repacks a changed repository with a
// bitmap and a commit-graph, leaving it valid and its push counter reset.

test('the maintenance schedule repacks changed repositories', async () => {
  const info = platformInfo();
  const owner = await createTenantWithAdmin();
  const repo = uniqueName('maint');
  await api('POST', '/api/v1/repos', { token: owner.token, body: { owner: owner.tenant, name: repo } });
  const work = await localRepo({ 'a.txt': '0\n' });
  for (let i = 1; i <= 3; i++) {
    await writeFiles(work, { 'a.txt': `${i}\n` });
    await git(['commit', '-qam', `c${i}`], work);
    expect((await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work)).code).toBe(0);
  }
  const db = createDb(info.databaseUrl, 1);
  const connection = await Connection.connect({ address: info.temporalAddress });
  try {
    const counter = async () =>
      (await db.query('SELECT pushes_since_maintenance AS n, last_maintenance_at FROM repos r JOIN tenants t ON t.id = r.tenant_id WHERE t.name = $1 AND r.name = $2', [owner.tenant, repo])).rows[0];
    expect((await counter()).n).toBe(3);

    const client = new Client({ connection, namespace: info.namespace });
    const schedule = client.schedule.getHandle(MAINTENANCE_SCHEDULE.id);
    const described = await schedule.describe();
    expect(described.action.type).toBe('startWorkflow');
    await schedule.trigger();

    const deadline = Date.now() + 90_000;
    while (Date.now() < deadline && (await counter()).n !== 0) await new Promise((r) => setTimeout(r, 300));
    const after = await counter();
    expect(after.n).toBe(0);
    expect(after.last_maintenance_at).not.toBeNull();
    const handle = client.workflow.getHandle(maintenanceWorkflowId(owner.tenant, repo));
    expect(await handle.result()).toEqual({ pushesCovered: 3 });
    // The repack ran on the queue of the storage node holding the repository (ADR 0014), which the
    // worker beside that git-server polls.
    const node = (await api('GET', `/api/v1/repos/${owner.tenant}/${repo}`, { token: owner.token })).body.node as string;
    expect(node).toEqual(expect.any(String));
    const queues = ((await handle.fetchHistory()).events ?? []).flatMap((e) => e.activityTaskScheduledEventAttributes?.taskQueue?.name ?? []);
    expect(queues).toEqual([storageQueue(node)]);

    const gitDir = path.join(info.dataDir, 'repos', owner.tenant, `${repo}.git`);
    const packs = readdirSync(path.join(gitDir, 'objects', 'pack'));
    expect(packs.filter((f) => f.endsWith('.pack'))).toHaveLength(1);
    expect(packs.some((f) => f.endsWith('.bitmap'))).toBe(true);
    expect(existsSync(path.join(gitDir, 'objects', 'info', 'commit-graphs')) || existsSync(path.join(gitDir, 'objects', 'info', 'commit-graph'))).toBe(true);
    expect((await git(['--git-dir', gitDir, 'fsck', '--full'])).code).toBe(0);
  } finally {
    await connection.close();
    await db.end();
  }
}, 150_000);
