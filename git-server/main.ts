import { dataPaths, loadConfig } from '../core/config';
import { createDb } from '../core/db';
import { createLogger } from '../core/logger';
import { lazyTemporalClient } from '../core/temporal';
import { readInternalSecret } from '../core/secrets-file';
import { createGitServerApp } from './app';
import { createObjectStore } from '../core/object-store-factory';
import { OutboxRelay } from './outbox-relay';
import { ReplicationRelay } from './replication-relay';
import { PollingRelay } from './outbox-drainer';
import { PackCache } from './pack-cache';
import { RepoGenerations } from './repo-generation';
import { createRedis } from '../core/redis';
import { maintenanceWorkflowId, ORCHESTRATION_QUEUE } from '../core/run-types';

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger('git-server', config.logLevel);
  if (!config.databaseUrl || !config.temporalAddress) throw new Error('git-server needs DATABASE_URL and TEMPORAL_ADDRESS (npm start sets them)');
  const db = createDb(config.databaseUrl);
  const getTemporal = lazyTemporalClient(config.temporalAddress, config.temporalNamespace);
  // Pushes commit outbox rows; these start their workflows (at once when kicked, else every second).
  const outbox = new OutboxRelay(db, getTemporal, log);
  const relay = new PollingRelay('outbox relay', () => outbox.drainAll(), log);
  const replicationOutbox = new ReplicationRelay(db, getTemporal);
  const replication = new PollingRelay('replication relay', () => replicationOutbox.drain(), log);
  const redis = config.redisUrl ? createRedis(config.redisUrl) : undefined;
  const packCache = new PackCache({
    dir: dataPaths(config).packCache,
    enabled: config.packCache === 'on',
    ttlMs: config.packCacheTtlSeconds * 1000,
    maxDiskBytes: config.packCacheMaxBytes,
    memoryEntryBytes: 1024 * 1024,
    memoryMaxBytes: 64 * 1024 * 1024,
    redis,
  });

  const app = createGitServerApp({
    db,
    log,
    reposDir: dataPaths(config).repos,
    internalSecret: await readInternalSecret(config),
    hookUrl: `http://${config.internalHost}:${config.gitPort}/internal/hooks`,
    publicUrl: config.publicUrl,
    lfsStore: createObjectStore(config, dataPaths(config)),
    onPushRecorded: () => relay.kick(),
    replicaZones: config.replicaZones,
    onReplicationQueued: () => replication.kick(),
    onMaintenanceDue: (target) => {
      // Best effort: the hourly sweep covers a start that fails here.
      getTemporal()
        .then((client) =>
          client.workflow.start('repoMaintenance', {
            workflowId: maintenanceWorkflowId(target.tenant, target.repo),
            taskQueue: ORCHESTRATION_QUEUE,
            args: [target],
            workflowIdConflictPolicy: 'USE_EXISTING',
          }),
        )
        .catch((err) => log.warn({ err, repo: `${target.tenant}/${target.repo}` }, 'could not start maintenance'));
    },
    packCache,
    generations: new RepoGenerations(redis),
    redis,
    limits: { maxPushBytes: config.maxPushBytes, uploadPackConcurrency: config.uploadPackConcurrency, uploadPackQueue: config.uploadPackQueue },
    healthChecks: { postgres: () => db.query('SELECT 1') },
  });
  const server = app.listen(config.gitPort, config.internalHost, () => log.info({ port: config.gitPort }, 'git-server listening'));
  relay.start();
  replication.start();
  const stop = () => {
    log.info('git-server shutting down');
    server.close();
    void Promise.all([relay.stop(), replication.stop()]).then(() => Promise.allSettled([db.end(), redis?.quit()])).then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
