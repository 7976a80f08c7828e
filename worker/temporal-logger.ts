import type { LogLevel, LogMetadata, Logger as TemporalLogger } from '@temporalio/common';
import type { Logger } from '../core/logger';
import { fieldsOfWorkflowId } from '../core/log-context';

const LEVELS: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' };

/**
 * The Temporal SDK's log lines (workflow `log`, activity `Context.log`, the worker's own) as lines
 * of the worker's pino logger (ADR 0028), so every line the worker writes is JSON with the same
 * fields: the OpenTelemetry plugin's `trace_id`/`span_id` become `traceId`/`spanId` (the names the
 * services' lines use), and a pipeline's workflow id, which is its run id, is also `runId`; a
 * repository's workflow (its id names it) gives `tenant` and `repo`.
 */
export class PinoTemporalLogger implements TemporalLogger {
  constructor(private readonly pino: Logger) {}

  log(level: LogLevel, message: string, meta?: LogMetadata): void {
    const method = LEVELS[level] ?? 'info';
    if (!this.pino.isLevelEnabled(method)) return;
    this.pino[method](fields(meta), message);
  }
  trace(message: string, meta?: LogMetadata): void {
    this.log('TRACE', message, meta);
  }
  debug(message: string, meta?: LogMetadata): void {
    this.log('DEBUG', message, meta);
  }
  info(message: string, meta?: LogMetadata): void {
    this.log('INFO', message, meta);
  }
  warn(message: string, meta?: LogMetadata): void {
    this.log('WARN', message, meta);
  }
  error(message: string, meta?: LogMetadata): void {
    this.log('ERROR', message, meta);
  }
}

/** The SDK's metadata in our field names. */
export function fields(meta: LogMetadata = {}): Record<string, unknown> {
  const { trace_id, span_id, trace_flags: _flags, error, ...rest } = meta as Record<string, unknown>;
  const out: Record<string, unknown> = { ...rest };
  if (typeof trace_id === 'string') out.traceId = trace_id;
  if (typeof span_id === 'string') out.spanId = span_id;
  if (error !== undefined) out.err = error;
  if (rest.workflowType === 'pipeline' && typeof rest.workflowId === 'string') out.runId = rest.workflowId;
  // A repository's workflows are named after it: their lines name the tenant and repository too.
  if (typeof rest.workflowId === 'string') for (const [k, v] of Object.entries(fieldsOfWorkflowId(rest.workflowId))) if (!(k in out)) out[k] = v;
  return out;
}
