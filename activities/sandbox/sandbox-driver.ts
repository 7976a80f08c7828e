/**
 * A sandbox runs one pipeline step: a shell command over a workspace directory, with no host files
 * except a read-only toolchain, and no network unless asked. Implementations: gVisor `runsc`
 * (default), bubblewrap (fallback), and `none` (development only, insecure).
 */
export interface SandboxRunOptions {
  /** Host directory mounted read-write at /workspace; the command's working directory. */
  workspace: string;
  /** Host directory mounted read-write at /artifacts (none driver: `DOTGIT_ARTIFACTS` is the host path). */
  artifacts?: string;
  /** Shell script, run with `/bin/sh -e -c`. */
  command: string;
  /** Environment of the command; nothing of the host's environment leaks in. */
  env: Record<string, string>;
  /** Wall-clock limit; on expiry the command gets SIGTERM, then SIGKILL after a short grace period. */
  timeoutMs: number;
  /** `none` (default): loopback only, in a namespace of its own. `isolated`: own network namespace. */
  network?: 'none' | 'isolated';
  /** Called once per output line (without the newline), in order, as the command prints it. */
  onLine: (stream: 'stdout' | 'stderr', line: string) => void;
  /** Aborting kills the command (SIGTERM, grace period, SIGKILL). */
  signal?: AbortSignal;
}

export interface SandboxResult {
  exitCode: number;
  timedOut: boolean;
  cancelled: boolean;
}

export interface SandboxDriver {
  readonly name: 'runsc' | 'bwrap' | 'none';
  run(options: SandboxRunOptions): Promise<SandboxResult>;
}

/** Thrown when no sandbox is available and `DOTGIT_SANDBOX=none` was not set explicitly. */
export class SandboxUnavailableError extends Error {
  override readonly name = 'SandboxUnavailableError';
}
