// Every workflow the worker registers. Deterministic code only (see eslint rules for this folder).
export { pipeline } from './pipeline';
export { maintenanceSweep, repoMaintenance } from './maintenance';
export { webhookDispatch } from './webhooks';
