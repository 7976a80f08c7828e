import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from '../helpers/git';

// The lockfile stays put (issue 16 item 5): `npm start` and `npm test` install with infra/deps.cjs,
// which runs `npm ci` (it reads package-lock.json, never writes it) only when node_modules does not
// match, and the committed lockfile is the one npm itself would write for package.json.

const ROOT = path.resolve(__dirname, '..', '..');
const run = promisify(execFile);

/** A fresh repository holding this tree's package.json, lockfile and install step, committed. */
async function freshCheckout(): Promise<string> {
  const dir = tempDir('dotgit-lockfile-');
  await fs.mkdir(path.join(dir, 'infra'));
  for (const f of ['package.json', 'package-lock.json', '.gitignore', 'infra/deps.cjs']) await fs.copyFile(path.join(ROOT, f), path.join(dir, f));
  const git = (...args: string[]) => run('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { cwd: dir });
  await git('init', '-q');
  await git('add', '.');
  await git('commit', '-qm', 'fresh');
  return dir;
}

const status = async (dir: string) => (await run('git', ['status', '--porcelain'], { cwd: dir })).stdout;

test('npm start and npm test install with infra/deps.cjs, not npm install', async () => {
  const { scripts } = JSON.parse(await fs.readFile(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  for (const s of ['prestart', 'pretest']) {
    expect({ s, script: scripts[s] }).toEqual({ s, script: expect.stringMatching(/^node infra\/deps\.cjs\b/) });
    expect(scripts[s]).not.toMatch(/npm (install|i)\b/);
  }
});

test('a fresh checkout without node_modules gets npm ci, which accepts the lockfile and leaves the tree clean', async () => {
  const dir = await freshCheckout();
  try {
    // --dry-run: npm ci resolves everything against the lockfile (and stops if package.json
    // disagrees with it) without downloading 600 packages.
    const { stdout } = await run(process.execPath, ['infra/deps.cjs', '--dry-run'], { cwd: dir, maxBuffer: 16 * 1024 * 1024 });
    expect(stdout).toMatch(/node_modules is missing: npm ci --dry-run/);
    expect(await status(dir)).toBe('');
    // The lockfile is exactly what npm writes for this package.json: a plain `npm install` leaves it too.
    await run('npm', ['install', '--package-lock-only', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir });
    expect(await status(dir)).toBe('');
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}, 120_000);

test('with node_modules matching the lockfile, the install step does nothing', async () => {
  const dir = await freshCheckout();
  try {
    await fs.symlink(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
    const { stdout, stderr } = await run(process.execPath, ['infra/deps.cjs'], { cwd: dir });
    expect({ stdout, stderr }).toEqual({ stdout: '', stderr: '' });
    expect(await status(dir)).toBe('?? node_modules\n'); // the link itself (node_modules/ ignores folders only)
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}, 60_000);
