/**
 * Typed errors of the provisioning modules. Each says what failed and, where a child process is
 * involved, carries the tail of its log so the cause is visible without opening files.
 */
export class ProvisionError extends Error {
  override readonly name: string = 'ProvisionError';
}

/** Thrown when a tool (temporal CLI, redis-server, python3/pip) is missing and cannot be installed. */
export class ToolInstallError extends ProvisionError {
  override readonly name = 'ToolInstallError';
}

/** Thrown when a service process exits before it became ready (bad flag, port in use, broken data). */
export class ChildExitedError extends ProvisionError {
  override readonly name = 'ChildExitedError';
  constructor(
    readonly service: string,
    readonly exit: { code: number | null; signal: NodeJS.Signals | null },
    readonly logTail: string,
  ) {
    super(`${service} exited before it was ready (code ${exit.code ?? 'none'}, signal ${exit.signal ?? 'none'}); last log lines:\n${logTail}`);
  }
}

/** Thrown when a service is still not ready after its start timeout; the process has been stopped. */
export class ReadinessTimeoutError extends ProvisionError {
  override readonly name = 'ReadinessTimeoutError';
  constructor(
    readonly service: string,
    readonly timeoutMs: number,
    readonly logTail: string,
    readonly lastProbeError?: string,
  ) {
    super(
      `${service} was not ready after ${timeoutMs} ms` +
        (lastProbeError ? ` (last probe: ${lastProbeError})` : '') +
        `; last log lines:\n${logTail}`,
    );
  }
}

/** Thrown when a data directory is in use by a live process that is not an orphan of a killed run. */
export class DataDirInUseError extends ProvisionError {
  override readonly name = 'DataDirInUseError';
}

/** Thrown when, running as root, the `postgres` user cannot write the Postgres data dir or its parent. */
export class PostgresPermissionError extends ProvisionError {
  override readonly name = 'PostgresPermissionError';
}
