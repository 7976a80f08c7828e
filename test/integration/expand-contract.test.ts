import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createDb, type Db } from '../../core/db';
import { ContractRefusedError, MIGRATIONS_DIR, migrate, migrationPhase, shippedSchemaVersion } from '../../core/migrate';
import { registerSchemaClient } from '../../core/schema-clients';
import { freePort } from '../../infra/provision/free-port';
import { platformInfo } from '../harness/platform-info';
import { killAllServices, startService } from '../helpers/own-services';

// Expand/contract migrations (issue 12 item 4, docs/migrations.md) against the shared platform's
// real Postgres, each scenario in a database of its own (CREATE DATABASE) so no other suite sees
// its tables. The worked example's migrations (test/fixtures/migrations-rename-column) rename
// widgets.title to widgets.name: 0101 (release 1), 0102 expand, 0103 contract.

const FIXTURE = path.resolve(__dirname, '..', 'fixtures', 'migrations-rename-column');
const SCHEMA_CLIENTS = '0024_schema_clients.sql';
const temps: string[] = [];
const databases: string[] = [];
const pools: Db[] = [];
let admin: Db;

/** A release's migrations folder: schema_clients plus the example's files up to `upTo`. */
function release(upTo: number): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dotgit-release-'));
  temps.push(dir);
  copyFileSync(path.join(MIGRATIONS_DIR, SCHEMA_CLIENTS), path.join(dir, SCHEMA_CLIENTS));
  for (const f of readdirSync(FIXTURE)) if (Number(f.slice(0, 4)) <= upTo) copyFileSync(path.join(FIXTURE, f), path.join(dir, f));
  return dir;
}

function urlOf(database: string): string {
  const u = new URL(platformInfo().databaseUrl);
  u.pathname = `/${database}`;
  return u.toString();
}

async function freshDatabase(): Promise<Db> {
  const name = `expand_contract_${process.pid}_${databases.length}`;
  await admin.query(`DROP DATABASE IF EXISTS ${name}`);
  await admin.query(`CREATE DATABASE ${name}`);
  databases.push(name);
  const db = createDb(urlOf(name), 4);
  pools.push(db);
  return db;
}

async function refusal(p: Promise<unknown>): Promise<ContractRefusedError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(ContractRefusedError);
  return err as ContractRefusedError;
}

const applied = async (db: Db) => (await db.query<{ name: string }>('SELECT name FROM schema_migrations ORDER BY name')).rows.map((r) => r.name);

beforeAll(() => {
  admin = createDb(platformInfo().databaseUrl, 2);
});

afterAll(async () => {
  killAllServices();
  await Promise.allSettled(pools.map((p) => p.end()));
  for (const d of databases) await admin.query(`DROP DATABASE IF EXISTS ${d} WITH (FORCE)`).catch(() => undefined);
  await admin.end();
  for (const t of temps) rmSync(t, { recursive: true, force: true });
});

test('phases: the first line declares expand or contract; none means expand; anything else is refused', () => {
  expect(migrationPhase('-- phase: contract\nDROP TABLE x;', 'x.sql')).toBe('contract');
  expect(migrationPhase('-- phase: expand\n', 'x.sql')).toBe('expand');
  expect(migrationPhase('CREATE TABLE x (id int);', 'x.sql')).toBe('expand');
  expect(() => migrationPhase('-- phase: shrink\n', '0099_x.sql')).toThrow(/0099_x\.sql: phase "shrink" is neither expand nor contract/);
  // Every migration from 0024 on says which it is.
  for (const f of readdirSync(MIGRATIONS_DIR).filter((n) => /^\d{4}_.*\.sql$/.test(n) && Number(n.slice(0, 4)) >= 24)) {
    expect([f, readFileSync(path.join(MIGRATIONS_DIR, f), 'utf8').split('\n', 1)[0]]).toEqual([f, expect.stringMatching(/^-- phase: (expand|contract)$/)]);
  }
});

test('the platform processes (api, gateway, git-server, worker) are registered with the schema version they were shipped with', async () => {
  const { rows } = await admin.query<{ kind: string; needs_version: number }>('SELECT kind, needs_version FROM schema_clients');
  // By kind, not pid: a suite before this one may have restarted one of the platform's processes.
  for (const kind of ['api', 'gateway', 'git-server', 'worker']) expect(rows).toContainEqual({ kind, needs_version: shippedSchemaVersion() });
});

test('an api of its own registers at start-up and deregisters on a clean shutdown (SIGTERM)', async () => {
  const port = await freePort();
  const api = await startService('api/main.ts', port, { DOTGIT_API_PORT: String(port) });
  const rowsOf = async () => (await admin.query<{ kind: string; needs_version: number }>('SELECT kind, needs_version FROM schema_clients WHERE pid = $1', [api.child.pid])).rows;
  expect(await rowsOf()).toEqual([{ kind: 'api', needs_version: shippedSchemaVersion() }]);
  api.child.kill('SIGTERM');
  expect(await api.exited).toEqual({ code: 0, signal: null });
  expect(await rowsOf()).toEqual([]);
});

test('rename a column: expand runs beside the old release, the contract waits until it deregisters', async () => {
  const db = await freshDatabase();
  const r1 = release(101);
  expect(await migrate(db, r1)).toEqual([SCHEMA_CLIENTS, '0101_widgets.sql']);
  const old = await registerSchemaClient(db, 'api', { host: 'old-host', pid: 4101, needsVersion: shippedSchemaVersion(r1) });
  await db.query("INSERT INTO widgets (title) VALUES ('before')");

  // The new release carries the expand and the contract: the expand runs with release 1 registered,
  // the contract refuses and names release 1's process.
  const r4 = release(103);
  const err = await refusal(migrate(db, r4));
  expect(await applied(db)).toEqual([SCHEMA_CLIENTS, '0101_widgets.sql', '0102_widgets_name_expand.sql']);
  expect(err.message).toMatch(/^migration 0103_widgets_name_contract\.sql is a contract migration: it needs every running process at schema version 103 or newer/);
  expect(err.message).toContain(`api (instance ${old.instance}, host old-host, pid 4101) needs schema version 101, last checked in at `);
  expect(err.blockers.map((b) => b.instance)).toEqual([old.instance]);

  // Expanded: release 1 writes only `title`, the new release writes `name`; each reads its own column.
  await db.query("INSERT INTO widgets (title) VALUES ('from release 1')");
  await db.query("INSERT INTO widgets (name) VALUES ('from release 4')");
  await db.query("UPDATE widgets SET title = 'before, renamed by release 1' WHERE title = 'before'");
  expect((await db.query('SELECT title, name FROM widgets ORDER BY id')).rows).toEqual([
    { title: 'before, renamed by release 1', name: 'before, renamed by release 1' },
    { title: 'from release 1', name: 'from release 1' },
    { title: 'from release 4', name: 'from release 4' },
  ]);

  // New processes registering do not help while the old one is still there.
  const fresh = await registerSchemaClient(db, 'api', { host: 'new-host', pid: 4104, needsVersion: shippedSchemaVersion(r4) });
  expect((await refusal(migrate(db, r4))).blockers.map((b) => b.instance)).toEqual([old.instance]);

  await old.stop(); // a clean shutdown deregisters
  expect(await migrate(db, r4)).toEqual(['0103_widgets_name_contract.sql']);
  expect((await db.query('SELECT name FROM widgets ORDER BY id')).rows.map((r) => r.name)).toEqual(['before, renamed by release 1', 'from release 1', 'from release 4']);
  expect((await db.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'widgets' ORDER BY column_name")).rows.map((r) => r.column_name)).toEqual(['id', 'name']);
  await fresh.stop();
});

test('a process that stopped checking in (crashed) no longer blocks the contract once stale', async () => {
  const db = await freshDatabase();
  expect(await migrate(db, release(102))).toHaveLength(3);
  const old = await registerSchemaClient(db, 'worker', { host: 'old-host', pid: 4201, needsVersion: 102 });
  const r4 = release(103);
  expect((await refusal(migrate(db, r4, { staleSeconds: 120 }))).message).toContain(`worker (instance ${old.instance}, host old-host, pid 4201) needs schema version 102`);
  // Its last check-in three minutes ago, as if it had been killed then (no refresh since).
  await db.query("UPDATE schema_clients SET seen_at = now() - interval '3 minutes' WHERE instance = $1", [old.instance]);
  expect(await migrate(db, r4, { staleSeconds: 120 })).toEqual(['0103_widgets_name_contract.sql']);
  await old.stop();
});

test('a release with only expands migrates fully while an older process is registered', async () => {
  const db = await freshDatabase();
  await migrate(db, release(101));
  const old = await registerSchemaClient(db, 'git-server', { host: 'old-host', pid: 4301, needsVersion: 101 });
  expect(await migrate(db, release(102))).toEqual(['0102_widgets_name_expand.sql']);
  expect((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM schema_clients')).rows[0].n).toBe(1);
  await old.stop();
  expect((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM schema_clients')).rows[0].n).toBe(0);
});

test('expandOnly (Helm\'s pre-upgrade hook, infra/migrate.ts --phase=expand) stops before the first contract even with nothing older registered; a full migrate then runs it', async () => {
  const db = await freshDatabase();
  await migrate(db, release(101));
  expect(await migrate(db, release(103), { expandOnly: true })).toEqual(['0102_widgets_name_expand.sql']);
  expect(await applied(db)).not.toContain('0103_widgets_name_contract.sql');
  expect(await migrate(db, release(103))).toEqual(['0103_widgets_name_contract.sql']);
});

test('infra/migrate.ts (deploys across hosts) applies the real migrations to an empty database, then finds nothing to do', async () => {
  await freshDatabase();
  const run = () =>
    promisify(execFile)(process.execPath, ['--import', 'tsx', path.resolve(__dirname, '..', '..', 'infra', 'migrate.ts')], {
      cwd: path.resolve(__dirname, '..', '..'),
      env: { PATH: process.env.PATH, HOME: process.env.HOME, DATABASE_URL: urlOf(databases[databases.length - 1]) },
    });
  const first = await run();
  expect(first.stdout).toMatch(/^applied on global: 0001_initial\.sql, .*0024_schema_clients\.sql/);
  expect((await run()).stdout).toBe('up to date\n');
});
