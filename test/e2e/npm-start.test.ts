import { execFile, spawn } from 'node:child_process';
import { existsSync, promises as fs, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { RunscDriver } from '../../activities/sandbox/runsc-driver';
import { freePort } from '../../infra/provision/free-port';
import { ROOT } from '../../infra/root';
import { cloneUrlAt, git, localRepo, runIdsFrom } from '../helpers/git';

// CONTRACT "Starting": `npm start` comes up on its embedded defaults, prints the URLs and `dotgit
// ready`, writes the admin token 0600, and on SIGTERM stops every child cleanly. It runs in a fresh
// checkout of this tree, as a user's first start: the install step, the build (ADR 0029), compiled
// services, and a tree as clean afterwards as before (issue 16).

const run = promisify(execFile);

/** This tree's files (tracked and new, as they are now) committed into a repository of their own, with node_modules and .tools linked. */
async function freshCheckout(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dotgit-checkout-'));
  await fs.chmod(dir, 0o755); // Postgres (as user postgres, when we are root) runs its archive command from here
  const files = (await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, maxBuffer: 64 * 1024 * 1024 })).stdout.split('\0').filter((f) => f && f !== 'node_modules' && f !== '.tools' && existsSync(path.join(ROOT, f)));
  for (const f of new Set(files)) await fs.cp(path.join(ROOT, f), path.join(dir, f), { recursive: true });
  const git = (...args: string[]) => run('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { cwd: dir, maxBuffer: 64 * 1024 * 1024 });
  await git('init', '-q');
  await git('add', '.');
  await git('commit', '-qm', 'fresh checkout');
  // Links to this tree's dependencies and tools; the ignore rules (`node_modules/`) match folders, not links.
  for (const link of ['node_modules', '.tools']) await fs.symlink(path.join(ROOT, link), path.join(dir, link));
  await fs.appendFile(path.join(dir, '.git', 'info', 'exclude'), '/node_modules\n/.tools\n');
  return dir;
}

/** Pids of live processes whose command line mentions `needle`. */
function processesMentioning(needle: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(needle)) found.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}

/** Mount points at or below `dir` (from /proc/self/mountinfo's fifth field). */
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((mountPoint) => mountPoint === dir || mountPoint.startsWith(`${dir}/`));
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

test('npm start in a fresh checkout builds, prints the URLs, the token and `dotgit ready`; SIGTERM stops everything; the tree stays clean', async () => {
  const checkout = await freshCheckout();
  // The default data dir, inside the checkout (.data/ is ignored).
  const dataDir = path.join(checkout, '.data');
  const ports = await Promise.all(Array.from({ length: 8 }, () => freePort()));
  const env = {
    ...process.env,
    DOTGIT_DATA_DIR: dataDir,
    DATABASE_URL: '',
    REDIS_URL: '',
    TEMPORAL_ADDRESS: '',
    PORT: String(ports[0]),
    DOTGIT_API_PORT: String(ports[1]),
    DOTGIT_GIT_PORT: String(ports[2]),
    DOTGIT_WORKER_PORT: String(ports[3]),
    DOTGIT_POSTGRES_PORT: String(ports[4]),
    DOTGIT_REDIS_PORT: String(ports[5]),
    TEMPORAL_PORT: String(ports[6]),
    TEMPORAL_UI_PORT: String(ports[7]),
    DOTGIT_PUBLIC_URL: '',
  };
  delete (env as Record<string, string | undefined>).DOTGIT_PUBLIC_URL;
  const child = spawn('npm', ['start'], { cwd: checkout, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const deadline = Date.now() + 150_000;
    while (!out.includes('dotgit ready') && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 200));
    expect(out).toContain('dotgit ready');
    expect(out).toContain(`gateway       http://127.0.0.1:${ports[0]}`);
    expect(out).toContain(`temporal ui   http://127.0.0.1:${ports[7]}/namespaces/dotgit/workflows`);
    // The Temporal server's metrics endpoint is printed (issue 14 item 3), and answers Prometheus text.
    const temporalMetrics = /^metrics +(http\S+\/metrics)/m.exec(out)?.[1];
    expect(temporalMetrics).toBeDefined();
    expect(await (await fetch(temporalMetrics!)).text()).toMatch(/^# (HELP|TYPE) /m);
    // The banner's links answer (issue 15 item 6): the api's index, and the Web UI on namespace dotgit.
    for (const label of ['api', 'temporal ui']) {
      const link = new RegExp(`^${label} +(http\\S+)$`, 'm').exec(out)?.[1];
      expect(link).toBeDefined();
      expect({ link, status: (await fetch(link!)).status }).toEqual({ link, status: 200 });
    }
    const token = (await fs.readFile(path.join(dataDir, 'admin.token'), 'utf8')).trim();
    expect(out).toContain(`admin token   ${token}`);
    expect((await fs.stat(path.join(dataDir, 'admin.token'))).mode & 0o777).toBe(0o600);
    const health = await fetch(`http://127.0.0.1:${ports[0]}/healthz`);
    expect(health.status).toBe(200);
    const ui = await fetch(`http://127.0.0.1:${ports[7]}/`);
    expect(ui.status).toBe(200);
    const me = await fetch(`http://127.0.0.1:${ports[0]}/api/v1/repos/dotgit/none`, { headers: { authorization: `Bearer ${token}` } });
    expect(me.status).toBe(404); // authenticated (not 401), the repository just does not exist
    // A push whose one-step pipeline runs in the sandbox: runsc then holds a mount under the data dir,
    // which the stop below must release (or the checkout could not be deleted).
    const gateway = `http://127.0.0.1:${ports[0]}`;
    const created = await fetch(`${gateway}/api/v1/repos`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ owner: 'dotgit', name: 'started', visibility: 'private' }) });
    expect(created.status).toBe(201);
    const work = await localRepo({ '.dotgit/pipeline.yml': 'jobs:\n  one:\n    steps:\n      - run: "true"\n' });
    const pushed = await git(['push', cloneUrlAt(gateway, 'dotgit', 'started', token), 'main'], work);
    expect(pushed.code).toBe(0);
    const [runId] = runIdsFrom(pushed.stderr);
    expect(runId).toBeDefined();
    let status = '';
    for (const until = Date.now() + 60_000; Date.now() < until && !['success', 'failure', 'cancelled'].includes(status); await new Promise((r) => setTimeout(r, 250))) {
      status = ((await (await fetch(`${gateway}/api/v1/runs/${encodeURIComponent(runId!)}`, { headers: { authorization: `Bearer ${token}` } })).json()) as { status: string }).status;
    }
    expect(status).toBe('success');
    expect(mountsUnder(dataDir).length).toBeGreaterThan(0);

    expect(processesMentioning(dataDir).length).toBeGreaterThanOrEqual(2); // postgres and temporal (redis renames itself)
    expect(await listening(ports[5])).toBe(true);
    // While it runs, the runner lists what it started (CONTRACT "Extended surface"), on the ports configured.
    const topologyFile = path.join(dataDir, 'run', 'topology.json');
    const { processes } = JSON.parse(await fs.readFile(topologyFile, 'utf8')) as { processes: Array<{ role: string; pid: number; port: number }> };
    const roles = ['gateway', 'api', 'git-server', 'worker', 'postgres', 'redis', 'temporal'];
    expect(Object.fromEntries(processes.map((p) => [p.role, p.port]))).toEqual(Object.fromEntries(roles.map((r, i) => [r, ports[i]])));
    // The services run the JavaScript the build made in the checkout, not TypeScript through tsx.
    for (const p of processes.filter((x) => ['gateway', 'api', 'git-server', 'worker'].includes(x.role))) {
      const argv = readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
      expect({ role: p.role, argv: argv.slice(1) }).toEqual({ role: p.role, argv: [path.join(checkout, 'dist', p.role, 'main.js')] });
    }
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(out).toContain('dotgit stopped');
    await expect(fs.stat(topologyFile)).rejects.toThrow(/ENOENT/);
    await new Promise((r) => setTimeout(r, 500));
    expect(processesMentioning(dataDir)).toEqual([]);
    for (const port of ports) expect(await listening(port)).toBe(false);
    expect(mountsUnder(dataDir)).toEqual([]);
    for (const s of ['gateway', 'api', 'git-server', 'worker']) expect(processesMentioning(path.join(checkout, 'dist', s, 'main.js'))).toEqual([]);
    const pgLog = await fs.readFile(`${path.join(dataDir, 'postgres')}.log`, 'utf8');
    expect(pgLog).toMatch(/database system is shut down/);
    // Install, build and a whole start and stop leave the checkout as it was.
    expect((await run('git', ['status', '--porcelain'], { cwd: checkout })).stdout).toBe('');
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await RunscDriver.releaseState(path.join(dataDir, 'sandbox'));
    await fs.rm(checkout, { recursive: true, force: true });
  }
}, 200_000);
