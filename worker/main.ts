import express from 'express';
import path from 'node:path';
import { NativeConnection, Worker } from '@temporalio/worker';
import { loadConfig, dataPaths } from '../core/config';
import { createDb } from '../core/db';
import { createRedis } from '../core/redis';
import { createLogger } from '../core/logger';
import { createObjectStore } from '../core/object-store-factory';
import { healthAndMetrics } from '../core/http';
import { ORCHESTRATION_QUEUE, SANDBOX_QUEUE } from '../core/run-types';
import { createOrchestrationActivities } from '../activities/orchestration-activities';
import { createSandboxActivities } from '../activities/sandbox-activities';
import { createMaintenanceActivities } from '../activities/maintenance-activities';
import { createHousekeepingActivities } from '../activities/housekeeping-activities';
import { createBackupActivities } from '../activities/backup-activities';
import { createReplicationActivities } from '../activities/replication-activities';
import { backupStore } from '../core/backup-store';
import { createWebhookActivities } from '../activities/webhook-activities';
import { SecretBox } from '../core/secret-box';
import { parseAllowHosts } from '../core/ssrf-guard';
import { ensureSchedules } from './schedules';
import { createSandboxDriver } from '../activities/sandbox/create-driver';
import { activeRunIdsFromDb, pruneOrphanedSandboxState } from '../activities/sandbox/orphans';
import type { SandboxDriver } from '../activities/sandbox/sandbox-driver';
import { readInternalSecret } from '../core/secrets-file';
import { pipelineSecretBox } from '../core/pipeline-secrets';
import { createDeployActivities } from '../activities/deploy-activities';
import { createAlertActivities } from '../activities/alert-activities';
import { lazyTemporalClient } from '../core/temporal';
import { startQueueMetrics } from './queue-metrics';

/**
 * The worker process: one Temporal worker on the orchestration queue (workflows + records) and
 * one on the sandbox queue (steps), so step capacity scales apart from orchestration.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger('worker', config.logLevel);
  if (!config.databaseUrl || !config.redisUrl || !config.temporalAddress) {
    throw new Error('worker needs DATABASE_URL, REDIS_URL and TEMPORAL_ADDRESS (npm start sets them)');
  }
  const paths = dataPaths(config);
  const db = createDb(config.databaseUrl);
  const redis = createRedis(config.redisUrl);
  const store = createObjectStore(config, paths);
  // Resolved lazily so a machine without a sandbox still runs workflows; steps then fail with a clear error.
  let driver: SandboxDriver | undefined;
  const getDriver = () => (driver ??= createSandboxDriver(config.sandbox, { stateDir: paths.sandbox, logger: log }));
  // Before this worker takes steps: what a killed predecessor left (its containers still run the
  // step Temporal is about to retry here) goes; workspaces of runs in progress stay for their retries.
  await pruneOrphanedSandboxState({ stateDir: paths.sandbox, workspacesDir: paths.workspaces, activeRunIds: activeRunIdsFromDb(db) })
    .then((r) => log.info(r, 'orphaned sandbox state pruned'))
    .catch((err) => log.warn({ err }, 'could not prune orphaned sandbox state'));

  // A client for what activities start or signal (environment locks), made on first use.
  const getClient = lazyTemporalClient(config.temporalAddress, config.temporalNamespace);
  const connection = await NativeConnection.connect({ address: config.temporalAddress });
  const orchestration = await Worker.create({
    connection,
    namespace: config.temporalNamespace,
    taskQueue: ORCHESTRATION_QUEUE,
    workflowsPath: path.resolve(__dirname, '../workflows/index.ts'),
    activities: {
      ...createOrchestrationActivities({ db, reposDir: paths.repos, redis }),
      ...createDeployActivities({ db, reposDir: paths.repos, redis, temporal: getClient }),
      ...createAlertActivities({
        url: config.alertWebhookUrl,
        secret: config.alertWebhookSecret,
        allowHosts: parseAllowHosts(config.webhookAllowHosts),
        timeoutMs: config.webhookTimeoutSeconds * 1000,
      }),
      ...createMaintenanceActivities({ db, reposDir: paths.repos }),
      ...createHousekeepingActivities({
        db,
        restoresDir: paths.restores,
        sandboxStateDir: paths.sandbox,
        workspacesDir: paths.workspaces,
        outboxRetentionDays: config.outboxRetentionDays,
        deliveryLogRetentionDays: config.deliveryLogRetentionDays,
        deliveryLogKeep: config.deliveryLogKeep,
        restoreCopyRetentionDays: config.restoreCopyRetentionDays,
      }),
      ...createBackupActivities({
        db,
        store: backupStore(config),
        reposDir: paths.repos,
        restoresDir: paths.restores,
        databaseUrl: config.databaseUrl,
        // Postgres is ours to back up only when npm start runs it (and gave us pg_basebackup).
        pgToolsDir: config.pgToolsDir,
        pgDataDir: config.pgToolsDir ? paths.postgres : undefined,
        retentionDays: config.backupRetentionDays,
        fullEveryHours: config.backupFullEveryHours,
      }),
      ...createReplicationActivities({ db, reposDir: paths.repos, zones: config.replicaZones, internalSecret: await readInternalSecret(config) }),
      ...createWebhookActivities({
        db,
        reposDir: paths.repos,
        publicUrl: config.publicUrl,
        secrets: new SecretBox(await readInternalSecret(config), 'webhook-secret'),
        allowHosts: parseAllowHosts(config.webhookAllowHosts),
        timeoutMs: config.webhookTimeoutSeconds * 1000,
      }),
    },
  });
  const sandbox = await Worker.create({
    connection,
    namespace: config.temporalNamespace,
    taskQueue: SANDBOX_QUEUE,
    activities: createSandboxActivities({
      db,
      redis,
      store,
      driver: getDriver,
      reposDir: paths.repos,
      workspacesDir: paths.workspaces,
      defaultStepTimeoutMs: config.stepTimeoutSeconds * 1000,
      // Mounting needs root; an unprivileged worker keeps workspaces on disk.
      workspaceTmpfsBytes: process.getuid?.() === 0 ? config.workspaceTmpfsMb * 1024 * 1024 : 0,
      secretBox: pipelineSecretBox(config.secretsKey ?? (await readInternalSecret(config))),
    }),
    maxConcurrentActivityTaskExecutions: config.sandboxConcurrency,
    // A cancel reaches a running step only through a heartbeat's answer: heartbeats go out every
    // second (not the SDK's default of 80% of the heartbeat timeout), so a cancelled sandbox stops
    // within a couple of seconds.
    maxHeartbeatThrottleInterval: '1 second',
  });

  await ensureSchedules(config.temporalAddress, config.temporalNamespace).catch((err) => log.warn({ err }, 'could not create the schedules'));

  startQueueMetrics({ connection, namespace: config.temporalNamespace, queues: [ORCHESTRATION_QUEUE, SANDBOX_QUEUE], workers: [orchestration, sandbox], intervalMs: config.queueMetricsIntervalSeconds * 1000, log });
  const app = express();
  app.use(healthAndMetrics({ postgres: () => db.query('SELECT 1'), redis: () => redis.ping() }));
  const server = app.listen(config.workerPort, config.internalHost);

  const stop = () => {
    log.info('worker shutting down');
    orchestration.shutdown();
    sandbox.shutdown();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  log.info({ queues: [ORCHESTRATION_QUEUE, SANDBOX_QUEUE] }, 'worker running');
  await Promise.all([orchestration.run(), sandbox.run()]);
  server.close();
  await connection.close();
  await Promise.all([db.end(), redis.quit()]);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
