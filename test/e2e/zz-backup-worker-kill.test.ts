import { existsSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { BackupManifest } from '../../core/backup-types';
import { platformInfo } from '../harness/platform-info';
import { api, uniqueName } from '../helpers/api-client';
import { git, tempDir } from '../helpers/git';

// Kill -9 the worker in the middle of a backup: the supervisor restarts it, the backup workflow
// completes on the new worker, and at no moment is the backup listed complete without its
// manifest (named zz- so the platform's other tests do not see the restart).

test('a backup survives the worker being killed mid-way and is never listed complete while partial', async () => {
  const info = platformInfo();
  const admin = info.adminToken;
  // A repository large enough (incompressible) that bundling it takes a while, made straight on disk.
  const owner = uniqueName('kill');
  const bare = path.join(info.dataDir, 'repos', owner, 'big.git');
  expect((await git(['init', '-q', '--bare', bare])).code).toBe(0);
  const work = tempDir();
  await git(['init', '-q', '-b', 'main'], work);
  for (let i = 0; i < 6; i++) await fs.writeFile(path.join(work, `blob-${i}.bin`), randomBytes(16 * 1024 * 1024));
  await git(['add', '-A'], work);
  await git(['commit', '-qm', 'big'], work);
  expect((await git(['push', '-q', bare, 'main'], work)).code).toBe(0);

  const connection = await Connection.connect({ address: info.temporalAddress });
  try {
    const client = new Client({ connection, namespace: info.namespace });
    const started = await api<{ id: string }>('POST', '/api/v1/backups', { token: admin, body: { full: true } });
    expect(started.status).toBe(202);
    const id = started.body.id;
    const manifestFile = path.join(info.dataDir, 'objects', 'backups', id, 'manifest.json');
    const handle = client.workflow.getHandle(id);

    // Wait until the repository part runs, then kill the worker as the OOM killer would.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const d = await handle.describe().catch(() => undefined);
      const raw = d?.raw.pendingActivities ?? [];
      if (raw.some((a) => a.activityType?.name === 'backupRepositories' && Number(a.state) === 2 /* STARTED */)) break;
      if (Date.now() > deadline) throw new Error('the backup never started its repository part');
      await new Promise((r) => setTimeout(r, 50));
    }
    const pidFile = path.join(info.dataDir, 'run', 'worker.pid');
    const workerPid = (JSON.parse(readFileSync(pidFile, 'utf8')) as { pid: number }).pid;
    process.kill(workerPid, 'SIGKILL');
    expect(existsSync(manifestFile)).toBe(false);

    // Until it completes, the listing never says complete without the manifest being there.
    let sawRunning = false;
    const end = Date.now() + 240_000;
    let status = '';
    while (Date.now() < end) {
      const list = await api<{ backups: Array<{ id: string; status: string }> }>('GET', '/api/v1/backups', { token: admin });
      status = list.body.backups.find((b) => b.id === id)?.status ?? '';
      if (status === 'running') sawRunning = true;
      if (status === 'complete') {
        expect(existsSync(manifestFile)).toBe(true);
        break;
      }
      expect(status).not.toBe('failed');
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(sawRunning).toBe(true);
    expect(status).toBe('complete');
    expect((JSON.parse(readFileSync(pidFile, 'utf8')) as { pid: number }).pid).not.toBe(workerPid);

    // The workflow finished on the new worker; the killed attempt was retried.
    const result = await handle.result();
    expect(result).toMatchObject({ id, postgresBase: true });
    const history = await handle.fetchHistory();
    const attempts = (history.events ?? []).filter((e) => e.activityTaskStartedEventAttributes).map((e) => e.activityTaskStartedEventAttributes!.attempt);
    expect(Math.max(...attempts.map(Number))).toBeGreaterThan(1);
    const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as BackupManifest;
    expect(manifest.repos[`${owner}/big`].kind).toBe('base');
    expect(existsSync(path.join(info.dataDir, 'objects', manifest.repos[`${owner}/big`].chain[0]))).toBe(true);
  } finally {
    await connection.close();
    await fs.rm(path.join(info.dataDir, 'repos', owner), { recursive: true, force: true });
  }
}, 400_000);
