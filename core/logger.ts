import { context, isSpanContextValid, trace } from '@opentelemetry/api';
import pino, { type Logger } from 'pino';
import { logContextFields } from './log-context';

export type { Logger };

/**
 * One logger per process; `service` names the process in every line. A line written inside a
 * traced request or activity (an active OpenTelemetry span: tracing on, ADR 0018) carries that
 * span's `traceId` and `spanId` (ADR 0028), so logs and traces join up; without tracing nothing
 * is added (and the request loggers' `traceId` from the gateway's traceparent stays as it was).
 * A line written while handling a request or activity also carries what that work is about
 * (`tenant`, `repo`, `runId`, `requestId`: core/log-context.ts), whichever logger wrote it.
 */
export function createLogger(service: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({ name: service, level, base: { service }, mixin: lineFields });
}

const { chindingsSym } = pino.symbols;

/** The context's fields and the active span's ids for a line, leaving out keys the line or its logger already carries (no key twice in a line). */
export function lineFields(line: object, level: number, logger: Logger): Record<string, string> {
  const out: Record<string, string> = traceFields(line, level, logger);
  const fields = logContextFields();
  if (!fields) return out;
  const bound = (logger as unknown as Record<symbol, string | undefined>)[chindingsSym] ?? '';
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined || key in line || key in out || bound.includes(`"${key}":`)) continue;
    out[key] = value;
  }
  return out;
}

/** The active span's ids for a log line, leaving out a `traceId` the line or its logger already carries. */
export function traceFields(line: object, _level: number, logger: Logger): Record<string, string> {
  if ('spanId' in line) return {};
  const span = trace.getSpan(context.active());
  if (!span) return {};
  const ids = span.spanContext();
  if (!isSpanContextValid(ids)) return {};
  // A request logger's child bindings (core/http.ts requestLogger) hold the same trace's id.
  const bound = (logger as unknown as Record<symbol, string | undefined>)[chindingsSym] ?? '';
  if ('traceId' in line || bound.includes('"traceId":')) return { spanId: ids.spanId };
  return { traceId: ids.traceId, spanId: ids.spanId };
}
