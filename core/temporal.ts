import { Client, Connection } from '@temporalio/client';
import { defineSearchAttributeKey } from '@temporalio/common';

/** Search attributes set on every run and deploy, so the Temporal Web UI can filter by them. */
export const SEARCH_ATTRIBUTES = {
  tenant: defineSearchAttributeKey('DotgitTenant', 'KEYWORD'),
  repo: defineSearchAttributeKey('DotgitRepo', 'KEYWORD'),
  ref: defineSearchAttributeKey('DotgitRef', 'KEYWORD'),
  commit: defineSearchAttributeKey('DotgitCommit', 'KEYWORD'),
};

export async function connectTemporal(address: string, namespace: string): Promise<Client> {
  const connection = await Connection.connect({ address });
  return new Client({ connection, namespace });
}
