import { Client, Connection } from '@temporalio/client';

export { SEARCH_ATTRIBUTES } from './search-attributes';

export async function connectTemporal(address: string, namespace: string): Promise<Client> {
  const connection = await Connection.connect({ address });
  return new Client({ connection, namespace });
}
