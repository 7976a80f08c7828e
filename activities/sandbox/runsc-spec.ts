/**
 * The OCI runtime spec (config.json) for one sandboxed step under runsc. Pure: paths in, JSON out,
 * so the mount policy can be unit-tested without running anything.
 */
import { ARTIFACTS_IN_SANDBOX, WORKSPACE_IN_SANDBOX, type ToolchainEntry } from './mount-policy';

export interface SandboxLimits {
  /** Memory of the whole sandbox (host cgroup); exceeding it kills the sandbox (exit 137). */
  memoryBytes: number;
  /** Host tasks of the whole sandbox (sentry threads + one stub per guest task); a host-side
   * safety net, since hitting it crashes the sandbox. Must be well above `processes`. */
  pids: number;
  /** CPU bandwidth in cores (cgroup cpu quota / period). */
  cpus: number;
  /** RLIMIT_NPROC of the step's user, enforced by gVisor itself: fork fails with EAGAIN. */
  processes: number;
  /** RLIMIT_NOFILE. */
  openFiles: number;
}

export const DEFAULT_LIMITS: SandboxLimits = {
  memoryBytes: 2 * 1024 ** 3,
  pids: 4096,
  cpus: 2,
  processes: 512,
  openFiles: 4096,
};

export interface OciSpecInput {
  /** The guest's process: the step's shell (`shellArgv`). */
  argv: string[];
  env: Record<string, string>;
  /** Host directory used as the (read-only, empty) root; holds the mount points and symlinks. */
  rootfs: string;
  /** Host directory holding the curated /etc. */
  etcDir: string;
  etcBinds: string[];
  toolchain: ToolchainEntry[];
  workspace: string;
  /** Host directory for /artifacts, when the step has one. */
  artifacts?: string;
  uid: number;
  gid: number;
  limits: SandboxLimits;
}

interface OciMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

const CPU_PERIOD_US = 100_000;

export function buildOciSpec(input: OciSpecInput): object {
  const roBind = (source: string, destination = source): OciMount => ({
    destination,
    type: 'bind',
    source,
    options: ['rbind', 'ro', 'nosuid', 'nodev'],
  });
  const mounts: OciMount[] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] },
    ...input.toolchain.filter((e) => e.kind === 'bind').map((e) => roBind(e.path)),
    roBind(input.etcDir, '/etc'),
    ...input.etcBinds.map((p) => roBind(p)),
    { destination: WORKSPACE_IN_SANDBOX, type: 'bind', source: input.workspace, options: ['rbind', 'rw', 'nosuid', 'nodev'] },
    ...(input.artifacts ? [{ destination: ARTIFACTS_IN_SANDBOX, type: 'bind', source: input.artifacts, options: ['rbind', 'rw', 'nosuid', 'nodev'] }] : []),
  ];
  const noCaps: string[] = [];
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: input.uid, gid: input.gid, additionalGids: [] },
      args: input.argv,
      env: Object.entries(input.env).map(([k, v]) => `${k}=${v}`),
      cwd: WORKSPACE_IN_SANDBOX,
      capabilities: { bounding: noCaps, effective: noCaps, inheritable: noCaps, permitted: noCaps, ambient: noCaps },
      rlimits: [
        { type: 'RLIMIT_NPROC', hard: input.limits.processes, soft: input.limits.processes },
        { type: 'RLIMIT_NOFILE', hard: input.limits.openFiles, soft: input.limits.openFiles },
        { type: 'RLIMIT_CORE', hard: 0, soft: 0 },
      ],
      noNewPrivileges: true,
    },
    root: { path: input.rootfs, readonly: true },
    hostname: 'sandbox',
    mounts,
    linux: {
      // A new network namespace is a second wall behind --network=none: even a runsc started with
      // --network=host would then get an empty host namespace, not the worker's (tested).
      namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
      resources: {
        memory: { limit: input.limits.memoryBytes },
        pids: { limit: input.limits.pids },
        cpu: { quota: Math.round(input.limits.cpus * CPU_PERIOD_US), period: CPU_PERIOD_US },
      },
    },
  };
}
