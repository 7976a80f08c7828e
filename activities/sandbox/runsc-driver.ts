/**
 * Runs a step under gVisor: `runsc run` on a per-step OCI bundle. The guest kernel (the sentry)
 * implements Linux in user space, so a kernel bug reachable from the step is not a host bug.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { locateRunsc } from './locate';
import { holdSandboxPath } from './orphans';
import { ARTIFACTS_IN_SANDBOX, etcBinds, sandboxEnv, SANDBOX_GID, SANDBOX_UID, toolchainEntries, WORKSPACE_IN_SANDBOX, writeCuratedEtc } from './mount-policy';
import { buildOciSpec, DEFAULT_LIMITS, type SandboxLimits } from './runsc-spec';
import { SandboxUnavailableError, shellArgv, type SandboxDriver, type SandboxResult, type SandboxRunOptions } from './sandbox-driver';
import { supervise } from './supervise';
import { chownTree } from './workspace-owner';

const execFileAsync = promisify(execFile);

export interface RunscDriverOptions {
  /** Private directory (mode 0700) for bundles and runsc's container state. */
  stateDir: string;
  /** Defaults to the provisioned pinned build, else `runsc` from PATH. */
  runscPath?: string;
  /** gVisor platform. `ptrace` works everywhere (no KVM, nested containers); `systrap` is faster on
   * newer gVisor builds but does not exist in Debian's 2022 runsc. */
  platform?: string;
  limits?: Partial<SandboxLimits>;
  /** SIGTERM -> SIGKILL grace period. */
  graceMs?: number;
  /** If set, runsc writes its debug logs (and strace of the guest) here. */
  debugLogDir?: string;
}

/** runsc needs nothing from the worker's environment; don't hand it secrets by accident. */
const RUNSC_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };

/** util-linux's `setpriv`, which can set the parent-death signal of the program it runs. */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

/**
 * `runsc run` under a parent-death signal: when the worker dies (kill -9, OOM), its sandboxes die
 * with it, as bubblewrap's `--die-with-parent` does and as a pod's containers do. Otherwise a
 * killed worker's step runs on to its end unseen while Temporal runs it again elsewhere — a deploy
 * step would then act twice (chaos drill "worker kill -9"). Without setpriv: as before, and the
 * next worker's start-up pruning kills the orphan.
 */
function dieWithParent(command: string, args: string[]): [string, string[]] {
  return SETPRIV ? [SETPRIV, ['--pdeathsig', 'KILL', '--', command, ...args]] : [command, args];
}

export class RunscDriver implements SandboxDriver {
  readonly name = 'runsc' as const;
  readonly runscPath: string;
  private readonly platform: string;
  private readonly limits: SandboxLimits;
  private readonly stateRoot: string;

  constructor(private readonly opts: RunscDriverOptions) {
    const runsc = opts.runscPath ?? locateRunsc();
    if (!runsc) throw new SandboxUnavailableError('runsc (gVisor) not found; run infra provisioning or `apt-get install runsc`');
    this.runscPath = runsc;
    this.platform = opts.platform ?? 'ptrace';
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.stateRoot = path.join(opts.stateDir, 'runsc-root');
  }

  /**
   * Newer runsc pins an empty network namespace for its gofers at `<root>/null-netns` (a bind mount
   * that makes later starts faster). Call this before deleting a state directory, which would
   * otherwise fail with EBUSY. Never needed in normal operation: the state directory persists.
   */
  static async releaseState(stateDir: string): Promise<void> {
    const pinned = path.join(stateDir, 'runsc-root', 'null-netns');
    // Concurrent runsc starts may have stacked several mounts there; unmount until none is left.
    for (let i = 0; i < 16; i++) {
      try {
        await execFileAsync('umount', ['--lazy', pinned], { env: RUNSC_ENV });
      } catch {
        return;
      }
    }
  }

  /** Flags every runsc subcommand must share, or `kill`/`delete` would not find the container. */
  private globalFlags(): string[] {
    const flags = [`--root=${this.stateRoot}`, `--platform=${this.platform}`, '--network=none'];
    if (this.opts.debugLogDir) flags.push('--debug', '--strace', `--debug-log=${this.opts.debugLogDir}/`);
    return flags;
  }

  private async runscCommand(args: string[]): Promise<void> {
    await execFileAsync(this.runscPath, [...this.globalFlags(), ...args], { env: RUNSC_ENV, timeout: 15_000 });
  }

  /** SIGTERM to every guest process. An abort can come before `runsc run` registered the container,
   * so a failed kill is retried briefly instead of waiting the whole grace period for SIGKILL. */
  private async killWhenCreated(id: string, alive: () => boolean): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.runscCommand(['kill', '--all', id, 'TERM']);
      } catch (err) {
        if (attempt >= 20 || !alive()) throw err;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  async run(options: SandboxRunOptions): Promise<SandboxResult> {
    // Both network modes mean "no route out": runsc's `none` gives the guest its own netstack with
    // loopback only, which is also what `isolated` asks for.
    const env = sandboxEnv(options.env);
    const id = `dotgit-${randomBytes(8).toString('hex')}`;
    const bundle = path.join(this.opts.stateDir, 'bundles', id);
    await mkdir(this.stateRoot, { recursive: true, mode: 0o700 });
    await mkdir(bundle, { recursive: true, mode: 0o700 });
    const release = holdSandboxPath(bundle); // periodic orphan pruning must not take a live step's bundle
    try {
      const spec = await this.prepareBundle(bundle, options, env);
      await writeFile(path.join(bundle, 'config.json'), JSON.stringify(spec));
      return await supervise(
        options,
        () =>
          spawn(...dieWithParent(this.runscPath, [...this.globalFlags(), 'run', '--bundle', bundle, id]), {
            env: RUNSC_ENV,
            stdio: ['ignore', 'pipe', 'pipe'],
          }),
        {
          // --all: the shell is PID 1 of the guest and ignores SIGTERM; its children must get it.
          term: (alive) => this.killWhenCreated(id, alive),
          kill: () => this.runscCommand(['kill', '--all', id, 'KILL']),
        },
        { graceMs: this.opts.graceMs },
      );
    } finally {
      // `runsc run` deletes the container when it exits normally; this covers crashes and kills.
      await this.runscCommand(['delete', '--force', id]).catch(() => undefined);
      await rm(bundle, { recursive: true, force: true });
      release();
    }
  }

  private async prepareBundle(bundle: string, options: SandboxRunOptions, env: Record<string, string>) {
    const { workspace, artifacts, workspaceBytes = 0 } = options;
    const rootfs = path.join(bundle, 'rootfs');
    const etcDir = path.join(bundle, 'etc');
    const toolchain = toolchainEntries();
    // The root is read-only, so every mount point must exist beforehand.
    for (const dir of ['proc', 'tmp', 'dev', 'sys', 'etc', WORKSPACE_IN_SANDBOX.slice(1), ARTIFACTS_IN_SANDBOX.slice(1)]) {
      await mkdir(path.join(rootfs, dir), { recursive: true });
    }
    for (const entry of toolchain) {
      if (entry.kind === 'symlink') await symlink(entry.target, path.join(rootfs, entry.path));
      else await mkdir(path.join(rootfs, entry.path), { recursive: true });
    }
    await writeCuratedEtc(etcDir);
    // Decision (ADR 0002): steps run as uid 1000, never root, so the workspace is handed to that uid.
    const isRoot = process.getuid?.() === 0;
    if (isRoot) await chownTree(workspace, SANDBOX_UID, SANDBOX_GID);
    if (isRoot && artifacts) await chownTree(artifacts, SANDBOX_UID, SANDBOX_GID);
    return buildOciSpec({
      argv: shellArgv(options),
      env,
      rootfs,
      etcDir,
      etcBinds: etcBinds(),
      toolchain,
      workspace,
      artifacts,
      uid: SANDBOX_UID,
      gid: SANDBOX_GID,
      // A tmpfs workspace's pages are charged to this sandbox's memory cgroup (the gofer writes
      // them): without room for them, a full workspace is an OOM kill (137), not ENOSPC.
      limits: { ...this.limits, memoryBytes: this.limits.memoryBytes + workspaceBytes },
    });
  }
}
