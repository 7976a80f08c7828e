/**
 * No sandbox at all: the command runs as the worker's user, with the worker's view of the host.
 * Development only (e.g. on a laptop without runsc or bwrap); createSandboxDriver warns loudly.
 * The environment is still only what the pipeline passes, so local runs behave like sandboxed ones.
 */
import { spawn } from 'node:child_process';
import { sandboxEnv } from './mount-policy';
import { shellArgv, type SandboxDriver, type SandboxResult, type SandboxRunOptions } from './sandbox-driver';
import { supervise } from './supervise';

export class NoneDriver implements SandboxDriver {
  readonly name = 'none' as const;

  constructor(private readonly opts: { graceMs?: number } = {}) {}

  async run(options: SandboxRunOptions): Promise<SandboxResult> {
    // No mounts here: the artifact directory is the host path itself.
    const env = sandboxEnv(options.artifacts ? { ...options.env, DOTGIT_ARTIFACTS: options.artifacts } : options.env);
    let pgid: number | undefined;
    // Signal the whole process group: the shell's children must stop too.
    const signalGroup = (signal: NodeJS.Signals) => {
      if (pgid === undefined) return;
      try {
        process.kill(-pgid, signal);
      } catch {
        // group already gone
      }
    };
    try {
      return await supervise(
        options,
        () => {
          // detached: the shell leads a new process group we can signal as a whole.
          const [shell, ...args] = shellArgv(options);
          const child = spawn(shell, args, {
            cwd: options.workspace,
            env,
            detached: true,
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          pgid = child.pid;
          return child;
        },
        { term: async () => signalGroup('SIGTERM'), kill: async () => signalGroup('SIGKILL') },
        { graceMs: this.opts.graceMs },
      );
    } finally {
      // Background processes the step left behind would outlive it; a real sandbox kills them too.
      signalGroup('SIGKILL');
    }
  }
}
