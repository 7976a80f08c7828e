/**
 * The logging surface the provisioning modules need; a pino logger (core/logger.ts) fits it, and
 * tests can pass `silentLog` or a console-backed one.
 */
export interface ProvisionLog {
  info(msg: string): void;
  warn(msg: string): void;
  debug(msg: string): void;
}

export const silentLog: ProvisionLog = { info: () => {}, warn: () => {}, debug: () => {} };
