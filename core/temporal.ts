import { Client, Connection } from '@temporalio/client';

export { SEARCH_ATTRIBUTES } from './search-attributes';

export async function connectTemporal(address: string, namespace: string): Promise<Client> {
  const connection = await Connection.connect({ address });
  return new Client({ connection, namespace });
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
