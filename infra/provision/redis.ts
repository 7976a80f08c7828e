import fs from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { startChild } from './child';
import { ToolInstallError } from './errors';
import { resolvePort, withPortRetry } from './free-port';
import type { ProvisionLog } from './log';
import { findOnPath } from './which';
import { aptInstall } from './apt';


/** Not 6379: a distro redis-server (which apt may start as a service) usually holds that one. */
export const DEFAULT_REDIS_PORT = 16379;

export interface RedisOptions {
  /** Holds the append-only file, redis.log and the pid file. */
  dataDir: string;
  /** 0 = a free one. */
  port: number;
  log: ProvisionLog;
  readyTimeoutMs?: number;
}

export interface RedisHandle {
  redisUrl: string;
  pid: number;
  logFile: string;
  stop(): Promise<void>;
}

/**
 * redis-server on 127.0.0.1 with AOF persistence under `dataDir`; resolves once it answers PING.
 * Throws ToolInstallError when redis-server is missing and cannot be installed, and
 * ChildExitedError / ReadinessTimeoutError (with the log tail) when it does not come up.
 */
export async function startRedis(opts: RedisOptions): Promise<RedisHandle> {
  const serverPath = await ensureRedisServer(opts.log);
  return withPortRetry(opts.port === 0, () => startOnce(serverPath, opts));
}

async function startOnce(serverPath: string, opts: RedisOptions): Promise<RedisHandle> {
  const port = await resolvePort(opts.port);
  const dataDir = path.resolve(opts.dataDir);
  fs.mkdirSync(dataDir, { recursive: true });
  const redisUrl = `redis://127.0.0.1:${port}`;

  const child = await startChild({
    name: 'redis',
    command: serverPath,
    // No RDB snapshots, AOF only: every write survives a restart and there is no fork per save.
    args: ['--port', String(port), '--bind', '127.0.0.1', '--dir', dataDir, '--save', '', '--appendonly', 'yes', '--daemonize', 'no'],
    logFile: path.join(dataDir, 'redis.log'),
    pidFile: path.join(dataDir, 'redis-server.pid'),
    log: opts.log,
    probe: () => ping(redisUrl),
    readyTimeoutMs: opts.readyTimeoutMs ?? 30_000,
  });
  opts.log.info(`redis ready at ${redisUrl}`);
  // SIGTERM makes redis do what SHUTDOWN does: fsync the AOF, then exit.
  return { redisUrl, pid: child.pid, logFile: child.logFile, stop: async () => void (await child.stop()) };
}

async function ping(url: string): Promise<void> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false, connectTimeout: 1000, commandTimeout: 1000 });
  client.on('error', () => {}); // reported through connect()/ping() instead
  try {
    await client.connect();
    const answer = await client.ping();
    if (answer !== 'PONG') throw new Error(`PING answered ${answer}`);
  } finally {
    client.disconnect();
  }
}

/** redis-server from PATH (or /usr/sbin), else `apt-get install redis-server` when running as root. */
export async function ensureRedisServer(log: ProvisionLog): Promise<string> {
  const found = findOnPath('redis-server', ['/usr/sbin', '/usr/local/bin']);
  if (found) return found;
  if (process.getuid?.() !== 0) {
    throw new ToolInstallError('redis-server is not installed; install the system package (Debian: redis-server) or set REDIS_URL');
  }
  log.info('redis-server not found; installing the Debian package redis-server');
  if (!(await aptInstall(['redis-server'], log))) throw new ToolInstallError('apt-get install redis-server failed (see the log above); install it or set REDIS_URL');
  const installed = findOnPath('redis-server', ['/usr/sbin', '/usr/bin']);
  if (!installed) throw new ToolInstallError('apt-get installed redis-server, but no redis-server binary was found');
  return installed;
}
