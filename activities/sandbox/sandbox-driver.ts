/**
 * A sandbox runs one pipeline step: a shell command over a workspace directory, with no host files
 * except a read-only toolchain, and no network unless asked. Implementations: gVisor `runsc`
 * (default), bubblewrap (fallback), and `none` (development only, insecure).
 */
import type { LineMask } from './line-splitter';

export interface SandboxRunOptions {
  /** Host directory mounted read-write at /workspace; the command's working directory. */
  workspace: string;
  /** Host directory mounted read-write at /artifacts (none driver: `DOTGIT_ARTIFACTS` is the host path). */
  artifacts?: string;
  /** Shell script, run with `/bin/sh -e -c`. */
  command: string;
  /** Environment of the command; nothing of the host's environment leaks in. */
  env: Record<string, string>;
  /** Wall-clock limit; on expiry the command gets SIGTERM, then SIGKILL after a short grace period.
   * A timed-out step exits 124 (as coreutils `timeout`), or 137 when it needed SIGKILL. */
  timeoutMs: number;
  /** `none` (default): loopback only, in a namespace of its own. `isolated`: own network namespace. */
  network?: 'none' | 'isolated';
  /**
   * Bytes of the workspace that count against the sandbox's memory: a tmpfs workspace's size cap.
   * Its pages are charged to the sandbox's memory cgroup, so the runsc driver raises the memory
   * limit by this much; a full workspace is then the shell's ENOSPC, not an OOM kill (exit 137).
   */
  workspaceBytes?: number;
  /** Secret masking applied to each line before it is cut to the maximum line length, so no secret is split unmasked. */
  mask?: LineMask;
  /** Called once per output line (without the newline), in order, as the command prints it. */
  onLine: (stream: 'stdout' | 'stderr', line: string) => void;
  /** Aborting kills the command (SIGTERM, grace period, SIGKILL). */
  signal?: AbortSignal;
  /**
   * Where the sandbox itself records that the command ended: a file name relative to the workspace,
   * written `<tag> <exit status>` inside the sandbox the moment the command exits, before the sandbox
   * is torn down and the worker hears of it. A worker lost in between learns from it that the command
   * finished, instead of running it again. Unset (the default): nothing is written.
   */
  exitRecord?: { file: string; tag: string };
}

/**
 * The argv that runs `command` with `/bin/sh -e -c`; with an exit record, under a wrapper shell that
 * writes the record as soon as the command's shell exits and then exits with its status.
 */
export function shellArgv({ command, exitRecord }: Pick<SandboxRunOptions, 'command' | 'exitRecord'>): string[] {
  if (!exitRecord) return ['/bin/sh', '-e', '-c', command];
  // Positional parameters, never spliced into the script: the command and names stay data.
  const wrapper = '/bin/sh -e -c "$1"; s=$?; { echo "$3 $s" > "$2"; } 2>/dev/null; exit $s';
  return ['/bin/sh', '-c', wrapper, '/bin/sh', command, exitRecord.file, exitRecord.tag];
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
