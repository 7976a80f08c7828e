import { context, isSpanContextValid, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type Attributes, type Context, type Span } from '@opentelemetry/api';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { Request, RequestHandler } from 'express';
import { routeTemplate } from './metrics';
import type { Resource } from '@opentelemetry/resources';

/**
 * OpenTelemetry tracing (ADR 0018): one trace per push, from the gateway through the git-server,
 * the outbox row, the workflow and its activities to the sandbox step and outgoing webhooks.
 * Export is OTLP over HTTP (JSON), configured by the standard variables
 * (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS`,
 * `OTEL_SERVICE_NAME`…). Without an endpoint nothing is loaded or started: the API's no-op tracer
 * answers and every helper here returns at once (off costs nothing).
 */

interface Started {
  processor: SpanProcessor;
  resource: Resource;
  shutdown(): Promise<void>;
}

let started: Started | undefined;

/** Whether the environment asks for trace export. */
export function tracingConfigured(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED === 'true' || env.OTEL_TRACES_EXPORTER === 'none') return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

/** Whether this process exports traces (startTracing ran with an endpoint configured). */
export function tracingOn(): boolean {
  return started !== undefined;
}

/**
 * Starts the SDK once per process when configured: a tracer provider with the W3C propagator and
 * an AsyncLocalStorage context manager, batching spans to the OTLP/HTTP exporter. `service` names
 * the process (`dotgit-<service>` unless OTEL_SERVICE_NAME says otherwise).
 */
export function startTracing(service: string): boolean {
  if (started) return true;
  if (!tracingConfigured()) return false;
  // Loaded only here, so a process without tracing never loads the SDK.
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node') as typeof import('@opentelemetry/sdk-trace-node');
  const { BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base') as typeof import('@opentelemetry/sdk-trace-base');
  const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http') as typeof import('@opentelemetry/exporter-trace-otlp-http');
  const { Resource: ResourceClass } = require('@opentelemetry/resources') as typeof import('@opentelemetry/resources');
  /* eslint-enable @typescript-eslint/no-require-imports */
  const resource = new ResourceClass({ 'service.name': process.env.OTEL_SERVICE_NAME || `dotgit-${service}`, 'service.namespace': 'dotgit' });
  // Short batches: a push's spans should reach the collector within a second or so.
  const processor = new BatchSpanProcessor(new OTLPTraceExporter(), { scheduledDelayMillis: 500 });
  const provider = new NodeTracerProvider({ resource, spanProcessors: [processor] });
  provider.register();
  started = { processor, resource, shutdown: () => provider.shutdown() };
  return true;
}

/** Flushes and stops the exporter (on shutdown, so the last spans are sent). */
export async function stopTracing(): Promise<void> {
  await started?.shutdown().catch(() => undefined);
}

/** The span processor and resource, for the Temporal worker's workflow span sink; undefined when off. */
export function tracingPipeline(): { processor: SpanProcessor; resource: Resource } | undefined {
  return started ? { processor: started.processor, resource: started.resource } : undefined;
}

export const tracer = () => trace.getTracer('dotgit');

/** The W3C `traceparent` of the active span (or of `ctx`), undefined when none is recording. */
export function currentTraceparent(ctx: Context = context.active()): string | undefined {
  if (!started) return undefined;
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return carrier.traceparent;
}

/** W3C Trace Context `traceparent`, version 00 (what the propagator reads; later versions keep this prefix). */
const TRACEPARENT = /^\s*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?\s*$/;

/**
 * The context a stored or received `traceparent` continues. Read here rather than through
 * `propagation.extract` (which does the same for a lone traceparent): every traced request
 * starts with it, and the propagator's carrier walk showed in the api's and gateway's profiles.
 */
export function contextFrom(traceparent: string | null | undefined): Context {
  if (!started || !traceparent) return ROOT_CONTEXT;
  const m = TRACEPARENT.exec(traceparent);
  if (!m || m[1] === 'ff' || (m[1] === '00' && m[5] !== undefined)) return ROOT_CONTEXT;
  const parent = { traceId: m[2]!, spanId: m[3]!, traceFlags: parseInt(m[4]!, 16), isRemote: true };
  return isSpanContextValid(parent) ? trace.setSpanContext(ROOT_CONTEXT, parent) : ROOT_CONTEXT;
}

/** The traceparent naming `span` as parent (the propagator's format, without its carrier walk). */
function traceparentOf(span: Span): string {
  const { traceId, spanId, traceFlags } = span.spanContext();
  return `00-${traceId}-${spanId}-0${(traceFlags & TraceFlags.SAMPLED).toString(16)}`;
}

export interface ServerSpan {
  span: Span;
  /** The span's context: run the request's work in it (`context.with`). */
  ctx: Context;
  /** The traceparent naming this span as parent, for the next hop. */
  traceparent: string;
  end(statusCode: number, name?: string): void;
}

/**
 * A SERVER span for an incoming request, child of the caller's `traceparent` when it sent one;
 * undefined when tracing is off.
 */
export function startServerSpan(name: string, incomingTraceparent: string | undefined, attributes: Attributes = {}): ServerSpan | undefined {
  if (!started) return undefined;
  const parent = contextFrom(incomingTraceparent);
  const span = tracer().startSpan(name, { kind: SpanKind.SERVER, attributes }, parent);
  const ctx = trace.setSpan(parent, span);
  return {
    span,
    ctx,
    traceparent: traceparentOf(span),
    end(statusCode, newName) {
      if (newName) span.updateName(newName);
      span.setAttribute('http.response.status_code', statusCode);
      if (statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    },
  };
}

/** Runs `fn` in a span (child of the active one), ended when `fn` settles; just `fn` when tracing is off. */
export async function inSpan<T>(name: string, attributes: Attributes, fn: () => Promise<T>, parent?: Context): Promise<T> {
  if (!started) return fn();
  return tracer().startActiveSpan(name, { attributes }, parent ?? context.active(), async (span) => {
    try {
      return await fn();
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      throw err;
    } finally {
      span.end();
    }
  });
}

export { context as otelContext };

/**
 * Express middleware: each request is a SERVER span (child of the caller's `traceparent`), named by
 * its route template when it ends, and the handlers run in its context so what they call (the
 * Temporal client, outgoing requests, spans of their own) joins the trace. `skip`: requests traced
 * otherwise (the git hooks' calls, which continue the push's trace from their token).
 */
export function traceRequests(service: string, skip?: (req: Request) => boolean): RequestHandler {
  return (req, res, next) => {
    // Probes and scrapes (every few seconds) would bury the traces worth reading.
    if (!started || req.path === '/healthz' || req.path === '/readyz' || req.path === '/metrics' || skip?.(req)) return next();
    const s = startServerSpan(`${service} ${req.method}`, req.header('traceparent'), { 'http.request.method': req.method });
    if (!s) return next();
    res.once('close', () => s.end(res.statusCode, `${service} ${req.method} ${routeTemplate(req)}`));
    context.with(s.ctx, next);
  };
}
