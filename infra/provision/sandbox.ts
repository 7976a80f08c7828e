/**
 * Provisions the sandbox runtimes: bubblewrap and a system runsc from apt, plus a pinned, newer
 * gVisor built with `go` into `<toolsDir>/gvisor/<version>/runsc` (Debian bookworm's 2022 runsc
 * breaks `ls`/`stat` in the guest; see docs/decisions/0002-sandbox.md). Idempotent and
 * non-interactive: safe to call on every start and in CI.
 */
import { execFile, spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { findInPath, GVISOR_GO_VERSION, provisionedRunscPath } from '../../activities/sandbox/locate';
import { aptInstall } from './apt';
import { silentLog, type ProvisionLog } from './log';

const execFileAsync = promisify(execFile);

export interface EnsureSandboxOptions {
  /** Project-local tools directory, e.g. `<repo>/.tools`. */
  toolsDir: string;
  log?: ProvisionLog;
  /** Build the pinned gVisor when `go` is available (default true). */
  buildRunsc?: boolean;
}

export interface SandboxPaths {
  /** The runsc the drivers will prefer: the pinned build if it exists, else the system's. */
  runsc?: string;
  runscVersion?: string;
  /** Whether `runsc` is the project-local pinned build. */
  runscPinned: boolean;
  systemRunsc?: string;
  bwrap?: string;
}

const NONINTERACTIVE_ENV = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  DEBIAN_FRONTEND: 'noninteractive',
  LANG: 'C.UTF-8',
};

/** Runs a command with no stdin; its output goes to debug, and the tail of it to warn on failure. */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, log: ProvisionLog): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    const relay = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line.trim()) continue;
        log.debug(`${path.basename(cmd)}: ${line}`);
        tail.push(line);
        if (tail.length > 10) tail.shift();
      }
    };
    child.stdout.on('data', relay);
    child.stderr.on('data', relay);
    child.on('error', (err) => {
      log.warn(`${cmd}: ${err.message}`);
      resolve(false);
    });
    child.on('close', (code) => {
      if (code !== 0) log.warn(`${path.basename(cmd)} ${args[0]} failed (exit ${code}): ${tail.join(' | ')}`);
      resolve(code === 0);
    });
  });
}

async function version(runsc: string): Promise<string | undefined> {
  try {
    const { stdout } = await execFileAsync(runsc, ['--version'], { env: NONINTERACTIVE_ENV, timeout: 10_000 });
    return stdout.split('\n')[0]?.trim();
  } catch {
    return undefined;
  }
}

/**
 * Builds the pinned gVisor from the Go module proxy. gVisor's `go` branch is plain Go (master needs
 * bazel). CGO is off because runsc re-executes itself inside an empty chroot where a dynamically
 * linked binary cannot find its loader. Built in a temp dir and renamed, so a crash leaves no
 * half-written binary behind and concurrent provisioners don't collide.
 */
async function buildPinnedRunsc(toolsDir: string, log: ProvisionLog): Promise<string | undefined> {
  const target = provisionedRunscPath(toolsDir);
  const go = findInPath('go', `${process.env.PATH ?? ''}:/usr/local/go/bin`);
  if (!go) {
    log.warn('sandbox: `go` not found; using the system runsc (ls/stat fail inside it, see ADR 0002)');
    return undefined;
  }
  await mkdir(path.dirname(target), { recursive: true });
  const tmp = await mkdtemp(path.join(path.dirname(target), '.build-'));
  try {
    log.info(`sandbox: building gVisor runsc ${GVISOR_GO_VERSION} with ${go} (one-off, about 1-3 minutes)`);
    const env = {
      ...process.env, // go needs HOME/GOPATH/GOCACHE and any proxy settings of this machine
      GOBIN: tmp,
      CGO_ENABLED: '0',
      GOFLAGS: '-mod=mod',
    };
    const ldflags = `-s -w -X gvisor.dev/gvisor/runsc/version.version=${GVISOR_GO_VERSION}`;
    const ok = await run(go, ['install', '-trimpath', `-ldflags=${ldflags}`, `gvisor.dev/gvisor/runsc@${GVISOR_GO_VERSION}`], env, log);
    if (!ok) {
      log.warn('sandbox: building runsc failed; using the system runsc');
      return undefined;
    }
    await chmod(path.join(tmp, 'runsc'), 0o755);
    await rename(path.join(tmp, 'runsc'), target);
    return target;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

export async function ensureSandbox({ toolsDir, log = silentLog, buildRunsc = true }: EnsureSandboxOptions): Promise<SandboxPaths> {
  const missing = [
    ...(findInPath('runsc') ? [] : ['runsc']),
    ...(findInPath('bwrap') ? [] : ['bubblewrap']),
  ];
  if (missing.length > 0 && !(await aptInstall(missing, log))) log.warn(`sandbox: could not install ${missing.join(' ')}`);

  const systemRunsc = findInPath('runsc');
  const bwrap = findInPath('bwrap');
  let pinned: string | undefined = provisionedRunscPath(toolsDir);
  if (!(await version(pinned))) pinned = buildRunsc ? await buildPinnedRunsc(toolsDir, log) : undefined;
  const runsc = pinned ?? systemRunsc;
  const paths: SandboxPaths = {
    runsc,
    runscVersion: runsc ? await version(runsc) : undefined,
    runscPinned: pinned !== undefined,
    systemRunsc,
    bwrap,
  };
  log.info(`sandbox: runsc=${paths.runsc ?? 'none'} (${paths.runscVersion ?? '-'}), bwrap=${paths.bwrap ?? 'none'}`);
  return paths;
}
