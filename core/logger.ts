import pino, { type Logger } from 'pino';

export type { Logger };

/** One logger per process; `service` names the process in every line. */
export function createLogger(service: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({ name: service, level, base: { service } });
}
