import { defineSearchAttributeKey } from '@temporalio/common';
import { SEARCH_ATTRIBUTE_NAMES } from '../temporal-config/dev-server';

/**
 * Search attributes set on every run and deploy, so the Temporal Web UI can filter by them.
 * Workflow-safe (no client import): workflows upsert DotgitStatus as they go.
 */
const [tenant, repo, ref, commit, environment, status] = SEARCH_ATTRIBUTE_NAMES;
export const SEARCH_ATTRIBUTES = {
  tenant: defineSearchAttributeKey(tenant, 'KEYWORD'),
  repo: defineSearchAttributeKey(repo, 'KEYWORD'),
  ref: defineSearchAttributeKey(ref, 'KEYWORD'),
  commit: defineSearchAttributeKey(commit, 'KEYWORD'),
  environment: defineSearchAttributeKey(environment, 'KEYWORD'),
  status: defineSearchAttributeKey(status, 'KEYWORD'),
};
