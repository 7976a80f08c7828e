/**
 * What the Temporal dev server started by `npm start` is configured with, in one place: the
 * namespace, the search attributes every run and deploy carries, and dynamic config values.
 * A production cluster needs the same namespace and search attributes registered.
 */

export const DEFAULT_NAMESPACE = 'dotgit';

/** Keyword search attributes set on every run and deploy (filterable in the Web UI). */
export const SEARCH_ATTRIBUTE_NAMES = ['DotgitTenant', 'DotgitRepo', 'DotgitRef', 'DotgitCommit', 'DotgitEnvironment', 'DotgitStatus'] as const;

/** `--dynamic-config-value` pairs for the dev server. */
export const DEV_SERVER_DYNAMIC_CONFIG: Record<string, unknown> = {
  // Deploy approval (later issue) answers through workflow updates.
  'frontend.enableUpdateWorkflowExecution': true,
  // Long pipelines write long histories; the dev server's default warning limit is low.
  'limit.historyCount.warn': 20000,
};
