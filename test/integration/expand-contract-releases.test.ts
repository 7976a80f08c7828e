import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createDb, type Db } from '../../core/db';
import { IDENTITY_HEADER, signIdentity } from '../../core/internal-identity';
import { ContractRefusedError, migrate } from '../../core/migrate';
import { freePort } from '../../infra/provision/free-port';
import { platformInfo } from '../harness/platform-info';

// Issue 12 item 4's release test: two releases' apis side by side under continuous traffic. The
// previous release is this commit (HEAD, extracted with `git archive` into a temporary folder);
// the next release is the same code plus the worked example's migrations
// (test/fixtures/migrations-rename-column: 0101, the 0102 expand, the 0103 contract), so it
// registers a newer schema version. Both run against a database of this test's own.

const ROOT = path.resolve(__dirname, '..', '..');
const FIXTURE = path.join(ROOT, 'test', 'fixtures', 'migrations-rename-column');
const temps: string[] = [];
const children: ChildProcess[] = [];
const dbName = `expand_contract_rel_${process.pid}`;
let admin: Db;
let db: Db;

function checkout(withExample: boolean): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dotgit-release-'));
  temps.push(dir);
  execFileSync('sh', ['-c', `git -C "${ROOT}" archive HEAD | tar -x -C "${dir}"`]);
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  if (withExample) for (const f of readdirSync(FIXTURE)) copyFileSync(path.join(FIXTURE, f), path.join(dir, 'migrations', f));
  return dir;
}

function dbUrl(): string {
  const u = new URL(platformInfo().databaseUrl);
  u.pathname = `/${dbName}`;
  return u.toString();
}

async function startApi(dir: string): Promise<{ child: ChildProcess; port: number; exited: Promise<number | null> }> {
  const info = platformInfo();
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(dir, 'api', 'main.ts')], {
    cwd: dir,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DATABASE_URL: dbUrl(),
      REDIS_URL: info.redisUrl,
      TEMPORAL_ADDRESS: info.temporalAddress,
      TEMPORAL_NAMESPACE: info.namespace,
      DOTGIT_INTERNAL_SECRET: info.internalSecret,
      DOTGIT_PUBLIC_URL: info.gatewayUrl,
      DOTGIT_API_PORT: String(port),
      LOG_LEVEL: 'warn',
    },
  });
  children.push(child);
  let err = '';
  child.stderr!.on('data', (d) => (err = (err + d).slice(-5000)));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  for (const deadline = Date.now() + 90_000; ; ) {
    if (await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false)) return { child, port, exited };
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`api from ${dir} did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Requests to each api in `targets` until stopped: health (Postgres, Redis, Temporal) and an anonymous repository lookup (a 404 from Postgres). */
function traffic(targets: () => number[]) {
  let running = true;
  const counts = { requests: 0, rounds: 0, errors: [] as string[] };
  const loop = (async () => {
    const identity = await signIdentity(platformInfo().internalSecret, null, 'expand-contract');
    while (running) {
      for (const port of [...targets()]) {
        for (const [p, want] of [['/healthz', 200], ['/api/v1/repos/nobody/nothing', 404]] as const) {
          const status = await fetch(`http://127.0.0.1:${port}${p}`, { headers: { [IDENTITY_HEADER]: identity } }).then((r) => r.status, (e: Error) => e.message);
          counts.requests++;
          if (status !== want) counts.errors.push(`${port}${p}: ${status}`);
        }
      }
      counts.rounds++;
    }
  })();
  return { counts, stop: async () => ((running = false), await loop) };
}

beforeAll(async () => {
  admin = createDb(platformInfo().databaseUrl, 1);
  await admin.query(`DROP DATABASE IF EXISTS ${dbName}`);
  await admin.query(`CREATE DATABASE ${dbName}`);
  db = createDb(dbUrl(), 2);
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await db.end();
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => undefined);
  await admin.end();
  for (const t of temps) rmSync(t, { recursive: true, force: true });
});

test("the previous release's api serves beside the next one through the expand with 0 errors; the contract waits for it to stop", async () => {
  const previous = checkout(false);
  const next = checkout(true);
  await migrate(db, path.join(previous, 'migrations'));
  const oldApi = await startApi(previous);
  const ports = [oldApi.port];
  const load = traffic(() => ports);

  // The next release migrates: the expand runs while the previous api serves; the contract is refused, naming it.
  const refused = await migrate(db, path.join(next, 'migrations')).then(() => undefined, (e: unknown) => e);
  expect(refused).toBeInstanceOf(ContractRefusedError);
  expect((refused as ContractRefusedError).message).toContain(`api (instance api@${os.hostname()}:${oldApi.child.pid}:`);
  expect((await db.query('SELECT name FROM schema_migrations WHERE name LIKE $1 ORDER BY name', ['01%'])).rows.map((r) => r.name)).toEqual(['0101_widgets.sql', '0102_widgets_name_expand.sql']);

  const newApi = await startApi(next);
  ports.push(newApi.port);
  const before = load.counts.requests;
  while (load.counts.requests < before + 100) await new Promise((r) => setTimeout(r, 50));
  expect((await migrate(db, path.join(next, 'migrations')).then(() => undefined, (e: unknown) => e))).toBeInstanceOf(ContractRefusedError);

  // The previous release stops cleanly once traffic goes to the next one only (as a balancer takes
  // an instance out before stopping it); then the contract runs.
  ports.shift();
  const round = load.counts.rounds;
  while (load.counts.rounds < round + 2) await new Promise((r) => setTimeout(r, 20));
  oldApi.child.kill('SIGTERM');
  expect(await oldApi.exited).toBe(0);
  expect(await migrate(db, path.join(next, 'migrations'))).toEqual(['0103_widgets_name_contract.sql']);
  const after = load.counts.requests;
  while (load.counts.requests < after + 50) await new Promise((r) => setTimeout(r, 50));
  await load.stop();
  newApi.child.kill('SIGTERM');
  expect(await newApi.exited).toBe(0);
  expect(load.counts.errors).toEqual([]);
  expect(load.counts.requests).toBeGreaterThan(150);
});
