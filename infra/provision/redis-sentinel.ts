import fs from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { sentinelUrl } from '../../core/redis-url';
import { startChild, type ManagedChild } from './child';
import { ChildExitedError, ProvisionError } from './errors';
import { freePort } from './free-port';
import type { ProvisionLog } from './log';
import { sleep } from './procfs';
import { ensureRedisServer } from './redis';

/** The master name the sentinels of `npm start -- --ha` monitor (REDIS_URL `redis-sentinel://…/dotgit`). */
export const DEFAULT_SENTINEL_MASTER = 'dotgit';
/** Sentinels listen this far above the data nodes' base port (16479… by default): not 26379, which a distro redis-sentinel may hold. */
const SENTINEL_PORT_OFFSET = 100;
const DATA_NODES = 3;
const SENTINELS = 3;
/** Sentinels that must agree the master is down before one of them fails it over: a majority of 3. */
const QUORUM = 2;

export interface RedisSentinelOptions {
  /** One directory per process below this (`redis-1` … `sentinel-3`), and `layout.json`. */
  dataDir: string;
  /** Port of the first data node; the others take the next two, the sentinels base+100… 0 = free ports. */
  port: number;
  log: ProvisionLog;
  /** Default `dotgit`. */
  masterName?: string;
  /**
   * How long a master must not answer before a sentinel thinks it down (`down-after-milliseconds`).
   * Most of a failover's duration; default 3000 ms (RTO goal 10 s). Only used when the set is made.
   */
  downAfterMs?: number;
  readyTimeoutMs?: number;
  /** Told whenever one of its processes exits or starts again (the runner rewrites topology.json). */
  onChange?: () => void;
}

export interface RedisSentinelProcess {
  role: 'redis' | 'sentinel';
  /** `redis-1` … `redis-3` (redis-1 is the first master), `sentinel-1` … `sentinel-3`. */
  instance: string;
  port: number;
  /** The running process, or undefined while stopped (killed in a drill). */
  readonly pid: number | undefined;
}

export interface RedisSentinelHandle {
  /** `redis-sentinel://127.0.0.1:<s1>,…/<master name>`: what every service gets as REDIS_URL. */
  redisUrl: string;
  masterName: string;
  sentinels: Array<{ host: string; port: number }>;
  processes: RedisSentinelProcess[];
  /** Starts a stopped (or killed) process again from its own config (which Redis and Sentinel keep up to date). No-op when running. */
  start(instance: string): Promise<void>;
  /** Sentinels first (so none fails a stopping master over), then the data nodes. Idempotent. */
  stop(): Promise<void>;
}

interface Layout {
  masterName: string;
  redisPorts: number[];
  sentinelPorts: number[];
}

/**
 * Redis with quorum (issue 13, ADR 0016): one master and two replicas (redis-server, AOF like the
 * single one), watched by three sentinels (`redis-server --sentinel`, the same binary; quorum 2), all
 * on 127.0.0.1 under `dataDir`. Made once: later starts over the same directory reuse its ports and
 * the config files Redis and Sentinel rewrite as they fail over, so whichever node leads now stays the
 * master. Resolves once every sentinel sees the master, both replicas and the other two sentinels.
 */
export async function startRedisSentinels(opts: RedisSentinelOptions): Promise<RedisSentinelHandle> {
  const serverPath = await ensureRedisServer(opts.log);
  const dataDir = path.resolve(opts.dataDir);
  const layoutFile = path.join(dataDir, 'layout.json');
  for (let attempt = 1; ; attempt++) {
    const existing = readLayout(layoutFile);
    const layout = existing ?? (await makeLayout(dataDir, opts));
    try {
      return await startSet(serverPath, dataDir, layout, opts);
    } catch (err) {
      // A port picked as free was taken before the process bound it: make the set again with others.
      const portTaken = err instanceof ChildExitedError && /address already in use/i.test(err.logTail);
      if (existing || opts.port !== 0 || !portTaken || attempt >= 3) throw err;
      fs.rmSync(layoutFile, { force: true });
    }
  }
}

function readLayout(file: string): Layout | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Layout;
  } catch {
    return undefined;
  }
}

/** Ports and the first config of every process; `layout.json` last, so a half-made set is made again. */
async function makeLayout(dataDir: string, opts: RedisSentinelOptions): Promise<Layout> {
  const picked = new Set<number>();
  const pick = async (fixed: number) => {
    if (opts.port !== 0) return fixed;
    let p: number;
    do p = await freePort();
    while (picked.has(p));
    picked.add(p);
    return p;
  };
  const layout: Layout = { masterName: opts.masterName ?? DEFAULT_SENTINEL_MASTER, redisPorts: [], sentinelPorts: [] };
  for (let i = 0; i < DATA_NODES; i++) layout.redisPorts.push(await pick(opts.port + i));
  for (let i = 0; i < SENTINELS; i++) layout.sentinelPorts.push(await pick(opts.port + SENTINEL_PORT_OFFSET + i));
  const [masterPort] = layout.redisPorts;
  layout.redisPorts.forEach((port, i) => {
    const dir = path.join(dataDir, `redis-${i + 1}`);
    fs.mkdirSync(dir, { recursive: true });
    writeConf(path.join(dir, 'redis.conf'), [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir "${dir}"`,
      // As the single redis-server: AOF only, no RDB snapshots (a replica's first sync still makes one).
      'save ""',
      'appendonly yes',
      'daemonize no',
      ...(i === 0 ? [] : [`replicaof 127.0.0.1 ${masterPort}`]),
    ]);
  });
  layout.sentinelPorts.forEach((port, i) => {
    const dir = path.join(dataDir, `sentinel-${i + 1}`);
    fs.mkdirSync(dir, { recursive: true });
    const name = layout.masterName;
    writeConf(path.join(dir, 'sentinel.conf'), [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir "${dir}"`,
      'daemonize no',
      `sentinel monitor ${name} 127.0.0.1 ${masterPort} ${QUORUM}`,
      `sentinel down-after-milliseconds ${name} ${opts.downAfterMs ?? 3000}`,
      // Also the wait before the same master may be failed over again (twice this).
      `sentinel failover-timeout ${name} 10000`,
      `sentinel parallel-syncs ${name} 1`,
    ]);
  });
  fs.writeFileSync(path.join(dataDir, 'layout.json'), JSON.stringify(layout, null, 2) + '\n');
  return layout;
}

function writeConf(file: string, lines: string[]): void {
  fs.writeFileSync(file, `# made by dotgit (infra/provision/redis-sentinel.ts); Redis rewrites it as roles change\n${lines.join('\n')}\n`);
}

async function startSet(serverPath: string, dataDir: string, layout: Layout, opts: RedisSentinelOptions): Promise<RedisSentinelHandle> {
  const specs = [
    ...layout.redisPorts.map((port, i) => ({ role: 'redis' as const, instance: `redis-${i + 1}`, port, conf: 'redis.conf', args: [] as string[] })),
    ...layout.sentinelPorts.map((port, i) => ({ role: 'sentinel' as const, instance: `sentinel-${i + 1}`, port, conf: 'sentinel.conf', args: ['--sentinel'] })),
  ];
  const running = new Map<string, ManagedChild>();
  const startOne = async (instance: string) => {
    if (running.get(instance)?.isRunning()) return;
    const s = specs.find((x) => x.instance === instance);
    if (!s) throw new ProvisionError(`no Redis process named ${instance} (have ${specs.map((x) => x.instance).join(', ')})`);
    const dir = path.join(dataDir, s.instance);
    const child = await startChild({
      name: s.instance,
      command: serverPath,
      args: [path.join(dir, s.conf), ...s.args],
      logFile: path.join(dir, `${s.role}.log`),
      pidFile: path.join(dir, `${s.role}.pid`),
      log: opts.log,
      probe: () => ping(s.port),
      readyTimeoutMs: opts.readyTimeoutMs ?? 30_000,
    });
    running.set(instance, child);
    void child.exited.then(() => opts.onChange?.());
    opts.onChange?.();
  };
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      const of = (role: string) => specs.filter((s) => s.role === role).map((s) => running.get(s.instance)?.stop());
      await Promise.all(of('sentinel'));
      await Promise.all(of('redis'));
    })());
  try {
    // Data nodes first: a sentinel that starts before its master logs it down at once.
    await Promise.all(specs.filter((s) => s.role === 'redis').map((s) => startOne(s.instance)));
    await Promise.all(specs.filter((s) => s.role === 'sentinel').map((s) => startOne(s.instance)));
    const sentinels = layout.sentinelPorts.map((port) => ({ host: '127.0.0.1', port }));
    await waitForQuorum(sentinels, layout.masterName, opts.readyTimeoutMs ?? 30_000);
    const redisUrl = sentinelUrl(sentinels, layout.masterName);
    opts.log.info(`redis ready at ${redisUrl} (1 master, 2 replicas, 3 sentinels)`);
    return {
      redisUrl,
      masterName: layout.masterName,
      sentinels,
      processes: specs.map((s) => ({
        role: s.role,
        instance: s.instance,
        port: s.port,
        get pid() {
          const c = running.get(s.instance);
          return c?.isRunning() ? c.pid : undefined;
        },
      })),
      start: startOne,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Ready: every sentinel names the same master, which answers as master with both replicas linked,
 * and sees the other two sentinels (they find each other through the master within ~2 s). Before
 * that, a master loss would not be failed over.
 */
export async function waitForQuorum(sentinels: Array<{ host: string; port: number }>, name: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      last = await quorumProblem(sentinels, name);
      if (!last) return;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new ProvisionError(`redis sentinels not ready after ${timeoutMs} ms: ${last}`);
    await sleep(200);
  }
}

async function quorumProblem(sentinels: Array<{ host: string; port: number }>, name: string): Promise<string> {
  const masters = new Set<string>();
  for (const s of sentinels) {
    const info = await withClient(s.port, async (c) => flatToObject((await c.call('SENTINEL', 'MASTER', name)) as unknown));
    if (Number(info['num-other-sentinels']) < SENTINELS - 1) return `sentinel ${s.port} sees ${info['num-other-sentinels']} other sentinels`;
    if (Number(info['num-slaves']) < DATA_NODES - 1) return `sentinel ${s.port} sees ${info['num-slaves']} replicas`;
    if (String(info.flags) !== 'master') return `sentinel ${s.port} flags the master ${info.flags}`;
    masters.add(`${info.ip}:${info.port}`);
  }
  if (masters.size !== 1) return `sentinels disagree on the master: ${[...masters].join(', ')}`;
  const masterPort = Number([...masters][0].split(':')[1]);
  const replication = await withClient(masterPort, (c) => c.info('replication'));
  if (!/^role:master$/m.test(replication)) return `${masterPort} is not a master yet`;
  const linked = (replication.match(/^slave\d+:.*state=online/gm) ?? []).length;
  if (linked < DATA_NODES - 1) return `master ${masterPort} has ${linked} replicas online`;
  return '';
}

/** SENTINEL MASTER's answer, a flat `[field, value, …]` list (RESP2) or a map (RESP3), as an object. */
function flatToObject(answer: unknown): Record<string, string> {
  if (answer instanceof Map) return Object.fromEntries([...answer.entries()].map(([k, v]) => [String(k), String(v)]));
  const out: Record<string, string> = {};
  const flat = answer as unknown[];
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = String(flat[i + 1]);
  return out;
}

async function withClient<T>(port: number, use: (c: Redis) => Promise<T>): Promise<T> {
  const c = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false, enableReadyCheck: false, connectTimeout: 1000, commandTimeout: 1000 });
  c.on('error', () => {}); // reported through connect() and the command instead
  try {
    await c.connect();
    return await use(c);
  } finally {
    c.disconnect();
  }
}

async function ping(port: number): Promise<void> {
  const answer = await withClient(port, (c) => c.ping());
  if (answer !== 'PONG') throw new Error(`PING answered ${answer}`);
}
