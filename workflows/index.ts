// Every workflow the worker registers. Deterministic code only (see eslint rules for this folder).
export { pipeline } from './pipeline';
export { maintenanceSweep, repoMaintenance } from './maintenance';
export { backup, restore, restoreDrill } from './backup';
export { replication, reconcileReplicas } from './replication';
export { webhookDispatch } from './webhooks';
export { deploy } from './deploy';
export { environmentLock } from './environment-lock';
export { concurrencyGroup } from './concurrency-group';
export { moveRepository } from './move';
export { dbSwitchover } from './db-switchover';
export { shardMove } from './shard-move';
export { scheduledPipeline } from './scheduled-pipeline';
