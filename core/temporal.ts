import { Client, Connection } from '@temporalio/client';
import { defineSearchAttributeKey } from '@temporalio/common';
import { SEARCH_ATTRIBUTE_NAMES } from '../temporal-config/dev-server';

/** Search attributes set on every run and deploy, so the Temporal Web UI can filter by them. */
const [tenant, repo, ref, commit] = SEARCH_ATTRIBUTE_NAMES;
export const SEARCH_ATTRIBUTES = {
  tenant: defineSearchAttributeKey(tenant, 'KEYWORD'),
  repo: defineSearchAttributeKey(repo, 'KEYWORD'),
  ref: defineSearchAttributeKey(ref, 'KEYWORD'),
  commit: defineSearchAttributeKey(commit, 'KEYWORD'),
};

export async function connectTemporal(address: string, namespace: string): Promise<Client> {
  const connection = await Connection.connect({ address });
  return new Client({ connection, namespace });
}
