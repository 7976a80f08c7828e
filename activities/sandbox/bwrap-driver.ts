/**
 * Fallback sandbox: bubblewrap (Linux namespaces + seccomp). Weaker than gVisor, because the step
 * talks to the host kernel directly, but it exposes exactly the same filesystem and network policy.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { bwrapSeccompProgram } from './bwrap-seccomp';
import { locateBwrap } from './locate';
import { holdSandboxPath } from './orphans';
import { ARTIFACTS_IN_SANDBOX, etcBinds, sandboxEnv, SANDBOX_GID, SANDBOX_UID, toolchainEntries, WORKSPACE_IN_SANDBOX, writeCuratedEtc } from './mount-policy';
import { SandboxUnavailableError, shellArgv, type SandboxDriver, type SandboxResult, type SandboxRunOptions } from './sandbox-driver';
import { supervise } from './supervise';
import { assertTraversable, chownTree } from './workspace-owner';

export interface BwrapDriverOptions {
  /** Private directory for per-run files (the generated /etc and the seccomp program). */
  stateDir: string;
  bwrapPath?: string;
  /** Size cap of the sandbox's /tmp (a host tmpfs, so otherwise bounded only by host memory). */
  tmpSizeBytes?: number;
  graceMs?: number;
}

const BWRAP_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };

/** Child fds: 0-2 stdio, then these. */
const SECCOMP_FD = 3;
const INFO_FD = 4;
const FIRST_DATA_FD = 5;

export class BwrapDriver implements SandboxDriver {
  readonly name = 'bwrap' as const;
  readonly bwrapPath: string;

  constructor(private readonly opts: BwrapDriverOptions) {
    const bwrap = opts.bwrapPath ?? locateBwrap();
    if (!bwrap) throw new SandboxUnavailableError('bubblewrap (bwrap) not found; `apt-get install bubblewrap`');
    this.bwrapPath = bwrap;
  }

  async run(options: SandboxRunOptions): Promise<SandboxResult> {
    // Both network modes: --unshare-all gives a fresh network namespace with only loopback.
    const env = sandboxEnv(options.env);
    const runDir = path.join(this.opts.stateDir, 'bwrap', `run-${randomBytes(8).toString('hex')}`);
    await mkdir(runDir, { recursive: true, mode: 0o700 });
    const release = holdSandboxPath(runDir);
    const fds: number[] = [];
    try {
      // Decision (ADR 0002): when the worker is root, bwrap itself runs as the sandbox uid on the
      // host too, so nothing in the sandbox ever holds host uid 0, even without capabilities.
      const isRoot = process.getuid?.() === 0;
      if (isRoot) {
        await assertTraversable(options.workspace, SANDBOX_UID, SANDBOX_GID);
        await chownTree(options.workspace, SANDBOX_UID, SANDBOX_GID);
        if (options.artifacts) await chownTree(options.artifacts, SANDBOX_UID, SANDBOX_GID);
      }

      const etcDir = path.join(runDir, 'etc');
      await writeCuratedEtc(etcDir);
      // Generated /etc files go in as file descriptors (--ro-bind-data), so bwrap never needs to
      // traverse our private state directory when it runs unprivileged.
      const etcFiles = await listFiles(etcDir);
      const seccomp = bwrapSeccompProgram();
      const seccompPath = path.join(runDir, 'seccomp.bpf');
      if (seccomp) await writeFile(seccompPath, seccomp);
      fds.push(seccomp ? openSync(seccompPath, 'r') : openSync('/dev/null', 'r'));
      for (const rel of etcFiles) fds.push(openSync(path.join(etcDir, rel), 'r'));

      const args = [
        '--unshare-all', // user, ipc, pid, net, uts, cgroup; no --share-net, so no route out
        '--unshare-user',
        '--uid', String(SANDBOX_UID),
        '--gid', String(SANDBOX_GID),
        '--hostname', 'sandbox',
        '--die-with-parent',
        '--new-session', // no controlling terminal: blocks TIOCSTI input injection
        '--cap-drop', 'ALL',
        '--clearenv',
        ...Object.entries(env).flatMap(([k, v]) => ['--setenv', k, v]),
        ...toolchainEntries().flatMap((e) =>
          e.kind === 'symlink' ? ['--symlink', e.target, e.path] : ['--ro-bind', e.path, e.path],
        ),
        '--perms', '0755', '--dir', '/etc',
        ...etcDirs(etcFiles).flatMap((d) => ['--perms', '0755', '--dir', `/etc/${d}`]),
        ...etcFiles.flatMap((rel, i) => ['--perms', '0644', '--ro-bind-data', String(FIRST_DATA_FD + i), `/etc/${rel}`]),
        ...etcBinds().flatMap((p) => ['--ro-bind', p, p]),
        '--proc', '/proc',
        '--dev', '/dev',
        '--size', String(this.opts.tmpSizeBytes ?? 1024 ** 3), '--perms', '1777', '--tmpfs', '/tmp',
        '--bind', options.workspace, WORKSPACE_IN_SANDBOX,
        ...(options.artifacts ? ['--bind', options.artifacts, ARTIFACTS_IN_SANDBOX] : []),
        '--remount-ro', '/', // the root tmpfs; /tmp and /workspace stay writable
        '--chdir', WORKSPACE_IN_SANDBOX,
        ...(seccomp ? ['--seccomp', String(SECCOMP_FD)] : []),
        '--info-fd', String(INFO_FD),
        ...shellArgv(options),
      ];

      let sandboxInit: number | undefined;
      let child: ChildProcess | undefined;
      return await supervise(
        options,
        () => {
          child = spawn(this.bwrapPath, args, {
            env: BWRAP_ENV,
            stdio: ['ignore', 'pipe', 'pipe', fds[0], 'pipe', ...fds.slice(1)],
            ...(isRoot ? { uid: SANDBOX_UID, gid: SANDBOX_GID } : {}),
          });
          readInfo(child.stdio[INFO_FD] as Readable, (pid) => (sandboxInit = pid));
          return child;
        },
        {
          term: async () => {
            if (sandboxInit !== undefined) await signalPidNamespace(sandboxInit, 'SIGTERM');
          },
          kill: async () => {
            // SIGKILL to a namespace's init is always delivered from outside, and its death takes
            // every process of the namespace with it.
            if (sandboxInit !== undefined) tryKill(sandboxInit, 'SIGKILL');
            child?.kill('SIGKILL');
          },
        },
        { graceMs: this.opts.graceMs },
      );
    } finally {
      for (const fd of fds) closeSync(fd);
      await rm(runDir, { recursive: true, force: true });
      release();
    }
  }
}

async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = path.join(prefix, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(dir, rel)));
    else if (entry.isFile()) out.push(rel);
  }
  return out;
}

/** Parent directories needed for the etc files and bind mounts, shallowest first, made 0755
 * because bwrap would otherwise create them 0700, unreadable to the sandbox user. */
function etcDirs(etcFiles: string[]): string[] {
  const dirs = new Set<string>();
  const binds = etcBinds().map((p) => path.relative('/etc', p));
  for (const rel of [...etcFiles, ...binds]) {
    for (let d = path.dirname(rel); d !== '.'; d = path.dirname(d)) dirs.add(d);
  }
  return [...dirs].sort((a, b) => a.split('/').length - b.split('/').length);
}

/** bwrap writes `{"child-pid": N, ...}` to the info fd once the sandbox exists. */
function readInfo(stream: Readable, onPid: (pid: number) => void): void {
  let text = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    text += chunk;
    try {
      const pid = (JSON.parse(text) as { 'child-pid'?: unknown })['child-pid'];
      if (typeof pid === 'number') onPid(pid);
    } catch {
      // incomplete JSON so far
    }
  });
  stream.on('error', () => undefined);
}

function tryKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/**
 * Signals every process in the sandbox's PID namespace except its init. The init (bwrap's reaper)
 * ignores SIGTERM, as any namespace init without a handler does; the step's processes do not.
 */
async function signalPidNamespace(initPid: number, signal: NodeJS.Signals): Promise<void> {
  const ns = await readlink(`/proc/${initPid}/ns/pid`).catch(() => undefined);
  if (!ns) return;
  for (const name of await readdir('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === initPid) continue;
    const other = await readlink(`/proc/${pid}/ns/pid`).catch(() => undefined);
    if (other === ns) tryKill(pid, signal);
  }
}
