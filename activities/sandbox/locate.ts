/**
 * Where the sandbox binaries are. A project-local gVisor built by infra/provision/sandbox.ts wins over
 * the system's runsc, because Debian bookworm's runsc (2022-12) answers statx with EINVAL, which
 * breaks coreutils `ls`/`stat` inside the sandbox (docs/decisions/0002-sandbox.md).
 */
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

/**
 * The gVisor commit we build, as a Go pseudo-version of gVisor's `go` branch (the only branch that
 * builds with plain `go`; master needs bazel). Bump deliberately: the provisioned binary's directory
 * is named after it, so a bump rebuilds.
 */
export const GVISOR_GO_VERSION = 'v0.0.0-20260905035102-160fafc42237';

/** Default tools directory: `<repo>/.tools` (this file lives in `<repo>/activities/sandbox/`). */
export const DEFAULT_TOOLS_DIR = path.resolve(__dirname, '..', '..', '.tools');

export function provisionedRunscPath(toolsDir: string = DEFAULT_TOOLS_DIR): string {
  return path.join(toolsDir, 'gvisor', GVISOR_GO_VERSION, 'runsc');
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Looks a command up in PATH plus the sbin directories, which non-login root shells often lack. */
export function findInPath(command: string, envPath: string = process.env.PATH ?? ''): string | undefined {
  const dirs = [...envPath.split(':'), '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
  for (const dir of dirs) {
    if (dir === '') continue;
    const candidate = path.join(dir, command);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** The runsc to use: the provisioned pinned build if present, else the system's. */
export function locateRunsc(toolsDir?: string): string | undefined {
  const provisioned = provisionedRunscPath(toolsDir);
  return isExecutable(provisioned) ? provisioned : findInPath('runsc');
}

export function locateBwrap(): string | undefined {
  return findInPath('bwrap');
}
