/** Temporal Schedules the platform keeps (created idempotently by the worker at start). */

/** Repacks (bitmaps, commit-graph) every repository that changed since its last maintenance. */
export const MAINTENANCE_SCHEDULE = {
  id: 'dotgit-maintenance',
  every: '1h',
  workflowType: 'maintenanceSweep',
} as const;

/** A repository also gets maintenance right after this many pushes, without waiting for the sweep. */
export const MAINTENANCE_EVERY_PUSHES = 50;
