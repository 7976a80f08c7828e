import { OpenTelemetryPlugin } from '@temporalio/interceptors-opentelemetry';
import { tracingPipeline } from '../core/tracing';

/**
 * Worker options that trace workflows and activities (ADR 0018), or nothing when tracing is off:
 * Temporal's OpenTelemetry plugin continues the trace the workflow's starter put in its headers
 * (the outbox relay's, the api's), gives every activity a span, and exports the workflow's own
 * spans through a sink (workflow code cannot do I/O).
 */
export function tracingOptions(): { plugins?: OpenTelemetryPlugin[] } {
  const pipeline = tracingPipeline();
  if (!pipeline) return {};
  return { plugins: [new OpenTelemetryPlugin({ resource: pipeline.resource, spanProcessor: pipeline.processor })] };
}
