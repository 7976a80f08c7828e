import { randomBytes } from 'node:crypto';
import type { SandboxRunOptions } from './sandbox-driver';

/**
 * When the step's command is running inside its sandbox (issue 14, ADR 0028): no driver can say,
 * as `runsc run` and bwrap return nothing until the command ends, and a spawned runsc has still to
 * boot its guest kernel. So the step's shell says it itself: its first act is to print a marker
 * line nobody can guess on stderr, which is taken out of the step's output here (the log never
 * shows it) and calls `onStarted`. The marker goes on the command's first line, before the user's
 * first word, so the script's line numbers stay the user's. Works the same for every driver.
 */
export function withStartSignal(options: SandboxRunOptions, onStarted: () => void): SandboxRunOptions {
  const marker = `dotgit-sandbox-started-${randomBytes(12).toString('hex')}`;
  let seen = false;
  return {
    ...options,
    command: `printf '%s\\n' ${marker} >&2; ${options.command}`,
    onLine: (stream, line) => {
      // Nothing of the step's runs before the marker, but the sandbox's own program may write first.
      if (!seen && stream === 'stderr' && line === marker) {
        seen = true;
        onStarted();
        return;
      }
      options.onLine(stream, line);
    },
  };
}
