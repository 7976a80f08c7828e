import { Client, Connection } from '@temporalio/client';
import { OpenTelemetryWorkflowClientInterceptor } from '@temporalio/interceptors-opentelemetry/lib/client';
import { tracingOn } from './tracing';

export { SEARCH_ATTRIBUTES } from './search-attributes';

export async function connectTemporal(address: string, namespace: string): Promise<Client> {
  const connection = await Connection.connect({ address });
  // Traced: a workflow started here continues the caller's trace (its headers carry the context).
  return new Client({ connection, namespace, ...(tracingOn() ? { interceptors: { workflow: [new OpenTelemetryWorkflowClientInterceptor()] } } : {}) });
}

/** A Temporal client made on first use; a failed connect is tried again on the next call. */
export function lazyTemporalClient(address: string, namespace: string): () => Promise<Client> {
  let client: Promise<Client> | undefined;
  return () =>
    (client ??= connectTemporal(address, namespace).catch((err) => {
      client = undefined;
      throw err;
    }));
}
