import { spawnSync } from 'node:child_process';
import { existsSync, promises as fs, readdirSync } from 'node:fs';
import path from 'node:path';
import { backupRepo } from '../../core/backup-repos';
import { writeManifest } from '../../core/backup-manifest';
import { FsObjectStore } from '../../core/fs-object-store';
import { ROOT } from '../../infra/root';
import { git, tempDir } from '../helpers/git';

// `npm run restore` on a stopped platform's data directory: it restores the state at a time from
// the object store and swaps it in (later repositories moved aside too), and refuses while any
// part of the platform still runs.

function restoreCommand(dataDir: string, args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'infra', 'restore.ts'), ...args], {
    cwd: ROOT,
    env: { ...process.env, DOTGIT_DATA_DIR: dataDir, DATABASE_URL: '' },
    encoding: 'utf8',
    timeout: 120_000,
  });
}

async function commitTo(bare: string, file: string, content: string) {
  const work = tempDir();
  await git(['clone', '-q', bare, work]);
  await fs.writeFile(path.join(work, file), content);
  await git(['add', '-A'], work);
  await git(['commit', '-qm', content], work);
  expect((await git(['push', '-q', 'origin', 'HEAD:main'], work)).code).toBe(0);
}

const refs = async (gitDir: string) => (await git(['--git-dir', gitDir, 'for-each-ref', '--format=%(objectname) %(refname)'])).stdout;

test('npm run restore swaps the state at a time into a stopped platform, keeping the previous data aside', async () => {
  const dataDir = tempDir();
  const reposDir = path.join(dataDir, 'repos');
  const web = path.join(reposDir, 'acme', 'web.git');
  await git(['init', '-q', '--bare', '--initial-branch=main', web]);
  await git(['--git-dir', web, 'config', 'http.receivepack', 'true']);
  await commitTo(web, 'a.txt', 'one');
  const refsAtBackup = await refs(web);

  const store = new FsObjectStore(path.join(dataDir, 'objects'));
  const id = 'backup-20240101T000000000Z-offline';
  const entry = await backupRepo({ store, reposDir, fullName: 'acme/web', backupId: id, base: true, now: () => new Date() });
  const finishedAt = new Date().toISOString();
  await writeManifest(store, { version: 1, id, startedAt: finishedAt, finishedAt, repos: { 'acme/web': entry } });

  // Later: web moves on and config changes, a new repository appears.
  await new Promise((r) => setTimeout(r, 20));
  await commitTo(web, 'a.txt', 'two');
  await git(['--git-dir', web, 'config', 'http.receivepack', 'false']);
  const late = path.join(reposDir, 'acme', 'late.git');
  await git(['init', '-q', '--bare', late]);

  // While the platform runs, nothing is touched.
  await fs.mkdir(path.join(dataDir, 'run'), { recursive: true });
  await fs.writeFile(path.join(dataDir, 'run', 'worker.pid'), JSON.stringify({ pid: process.pid }));
  const refused = restoreCommand(dataDir, ['--at', new Date().toISOString(), '--no-postgres']);
  expect(refused.status).toBe(1);
  expect(refused.stderr).toMatch(/the platform is running \(worker \(pid \d+\)\)/);
  expect(existsSync(late)).toBe(true);
  await fs.rm(path.join(dataDir, 'run'), { recursive: true });

  const bad = restoreCommand(dataDir, ['--no-postgres']);
  expect(bad.status).toBe(1);
  expect(bad.stderr).toMatch(/usage: npm run restore/);

  const r = restoreCommand(dataDir, ['--at', finishedAt, '--no-postgres']);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(r.stdout).toContain(`from backup ${id}`);
  expect(await refs(web)).toEqual(refsAtBackup);
  expect((await git(['--git-dir', web, 'config', 'http.receivepack'])).stdout.trim()).toBe('true');
  expect((await git(['--git-dir', web, 'fsck', '--full'])).code).toBe(0);
  expect(existsSync(late)).toBe(false);
  const aside = readdirSync(dataDir).find((d) => d.startsWith('repos.before-restore-offline-'))!;
  expect(existsSync(path.join(dataDir, aside, 'acme', 'late.git'))).toBe(true);
  expect(await refs(path.join(dataDir, aside, 'acme', 'web.git'))).not.toEqual(refsAtBackup);
}, 180_000);
