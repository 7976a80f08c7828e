import { spawn } from 'node:child_process';
import { promises as fs, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { RunscDriver } from '../../activities/sandbox/runsc-driver';
import { freePort } from '../../infra/provision/free-port';
import { ROOT } from '../../infra/root';

// CONTRACT "Starting": the runner behind `npm start` comes up on its embedded defaults, prints the
// URLs and `dotgit ready`, writes the admin token 0600, and on SIGTERM stops every child cleanly.

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

test('start prints the URLs, the token and `dotgit ready`; SIGTERM stops everything', async () => {
  const dataDir = path.join(ROOT, '.test-data', `start-${process.pid}`);
  await fs.rm(dataDir, { recursive: true, force: true });
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
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'infra', 'start.ts')], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
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

    expect(processesMentioning(dataDir).length).toBeGreaterThanOrEqual(2); // postgres and temporal (redis renames itself)
    expect(await listening(ports[5])).toBe(true);
    // While it runs, the runner lists what it started (CONTRACT "Extended surface"), on the ports configured.
    const topologyFile = path.join(dataDir, 'run', 'topology.json');
    const { processes } = JSON.parse(await fs.readFile(topologyFile, 'utf8')) as { processes: Array<{ role: string; pid: number; port: number }> };
    const roles = ['gateway', 'api', 'git-server', 'worker', 'postgres', 'redis', 'temporal'];
    expect(Object.fromEntries(processes.map((p) => [p.role, p.port]))).toEqual(Object.fromEntries(roles.map((r, i) => [r, ports[i]])));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(out).toContain('dotgit stopped');
    await expect(fs.stat(topologyFile)).rejects.toThrow(/ENOENT/);
    await new Promise((r) => setTimeout(r, 500));
    expect(processesMentioning(dataDir)).toEqual([]);
    for (const port of ports) expect(await listening(port)).toBe(false);
    for (const s of ['gateway', 'api', 'git-server', 'worker']) expect(processesMentioning(path.join(ROOT, s, 'main.ts')).filter((pid) => readFileSync(`/proc/${pid}/environ`, 'utf8').includes(dataDir))).toEqual([]);
    const pgLog = await fs.readFile(`${path.join(dataDir, 'postgres')}.log`, 'utf8');
    expect(pgLog).toMatch(/database system is shut down/);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await RunscDriver.releaseState(path.join(dataDir, 'sandbox'));
    await fs.rm(dataDir, { recursive: true, force: true });
  }
}, 200_000);
