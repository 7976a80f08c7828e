/** Temporal Schedules the platform keeps (created idempotently by the worker at start). */

/**
 * Repacks (bitmaps, commit-graph) every repository that changed since its last maintenance, and
 * housekeeps beside it: outbox, delivery-log and idempotency-key rows past their retention, restore
 * copies no longer needed, orphaned sandbox state (activities/housekeeping-activities.ts).
 */
export const MAINTENANCE_SCHEDULE = {
  id: 'dotgit-maintenance',
  every: '1h',
  workflowType: 'maintenanceSweep',
} as const;

/** A repository also gets maintenance right after this many pushes, without waiting for the sweep. */
export const MAINTENANCE_EVERY_PUSHES = 50;

/** Backups: incremental repository bundles, Postgres base when due (WAL is archived continuously). */
export const BACKUP_SCHEDULE = {
  id: 'dotgit-backup',
  every: '15m',
  workflowType: 'backup',
  // A platform that was down for a while takes one backup on return, not one per missed slot.
  catchupWindow: '30 minutes',
} as const;

/** Restores the newest backup into a scratch area and compares it with the live data. */
export const RESTORE_DRILL_SCHEDULE = {
  id: 'dotgit-restore-drill',
  every: '24h',
  workflowType: 'restoreDrill',
  catchupWindow: '6 hours',
} as const;

/** Compares every repository's refs across replica zones and repairs drift (a no-op without zones). */
export const REPLICA_RECONCILE_SCHEDULE = {
  id: 'dotgit-replica-reconcile',
  every: '30m',
  workflowType: 'reconcileReplicas',
  catchupWindow: '30 minutes',
} as const;
