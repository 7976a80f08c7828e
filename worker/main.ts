import express from 'express';
import path from 'node:path';
import { NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { loadConfig, dataPaths } from '../core/config';
import { startTracing } from '../core/tracing';
import { createShardRouter } from '../core/shard-router';
import { registerSchemaClientEverywhere } from '../core/shard-databases';
import { assertSentinelMaster, createRedis } from '../core/redis';
import { createLogger } from '../core/logger';
import { createObjectStore } from '../core/object-store-factory';
import { healthAndMetrics } from '../core/http';
import { httpMetrics } from '../core/metrics';
import { hostQueue, ORCHESTRATION_QUEUE, SANDBOX_QUEUE, storageQueue } from '../core/run-types';
import { resolveHostId } from '../core/host-id';
import { HostJobs, jobSlots } from '../activities/sandbox/host-jobs';
import { createOrchestrationActivities } from '../activities/orchestration-activities';
import { createSandboxActivities } from '../activities/sandbox-activities';
import { createScheduleActivities } from '../activities/schedule-activities';
import { IdTokenIssuer, oidcIssuer } from '../core/id-tokens';
import { SigningKeys } from '../core/signing-keys';
import { createMaintenanceActivities } from '../activities/maintenance-activities';
import { createHousekeepingActivities } from '../activities/housekeeping-activities';
import { createBackupActivities } from '../activities/backup-activities';
import { createDbFailoverActivities } from '../activities/db-failover-activities';
import { createReplicationActivities } from '../activities/replication-activities';
import { backupStore } from '../core/backup-store';
import { createWebhookActivities } from '../activities/webhook-activities';
import { SecretBox } from '../core/secret-box';
import { parseAllowHosts } from '../core/ssrf-guard';
import { ensureSchedules } from './schedules';
import { createSandboxDriver } from '../activities/sandbox/create-driver';
import { activeRunIdsFromDb, PERIODIC_PRUNE_MIN_AGE_MS, pruneOrphanedSandboxState } from '../activities/sandbox/orphans';
import type { SandboxDriver } from '../activities/sandbox/sandbox-driver';
import { readInternalSecret } from '../core/secrets-file';
import { pipelineSecretBox } from '../core/pipeline-secrets';
import { createDeployActivities } from '../activities/deploy-activities';
import { createConcurrencyActivities } from '../activities/concurrency-activities';
import { createAlertActivities } from '../activities/alert-activities';
import { createMoveActivities } from '../activities/move-activities';
import { createShardMoveActivities } from '../activities/shard-move-activities';
import { followShardPlacements } from '../core/shard-placement-events';
import { retryActivitiesWhenFenced } from '../core/shard-fence';
import { lazyTemporalClient } from '../core/temporal';
import { startQueueMetrics } from './queue-metrics';
import { registerBackupAge } from './backup-age-metrics';
import { activityLogContext } from './activity-log-context';
import { sdkMetrics } from './sdk-metrics';
import { tracingOptions } from './tracing';
import { PinoTemporalLogger } from './temporal-logger';
import { gitServerArchiveFetcher, SourceCache } from '../activities/sandbox/source-cache';
import { pingDatabase } from '../core/stores/server-store';

/**
 * The workflow code: the bundle the production build made (ADR 0029; with the OpenTelemetry
 * workflow interceptors in it when tracing is on, as a prebuilt bundle cannot take them at start),
 * or workflows/ bundled now, from source (development).
 */
function workflowCodeOption(bundleDir: string | undefined, traced: boolean): { workflowBundle: { codePath: string }; workflowsPath?: undefined } | { workflowsPath: string; workflowBundle?: undefined } {
  if (bundleDir) return { workflowBundle: { codePath: path.join(bundleDir, traced ? 'workflows-traced.js' : 'workflows.js') } };
  return { workflowsPath: path.resolve(__dirname, '../workflows/index.ts') };
}

/** What a storage worker runs of the backup activities: the parts that read its node's disk. */
const pickNodeParts = ({ backupRepositories, checkLiveRepos }: ReturnType<typeof createBackupActivities>) => ({ backupRepositories, checkLiveRepos });

/**
 * The worker process, its roles chosen by DOTGIT_WORKER_ROLES (default all): `orchestration` (with
 * `storage`, the activities that read the repositories' disk) runs workflows and records on the
 * orchestration queue; `sandbox` runs steps from the shared sandbox queue and from this host's own
 * queue (`dotgit-sandbox@<host id>`), where a job's later steps find the workspace its first step
 * made. Sandbox capacity thus scales apart from orchestration.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  // Off unless OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set (ADR 0018).
  startTracing('worker');
  const log = createLogger('worker', config.logLevel);
  if (!config.databaseUrl || !config.redisUrl || !config.temporalAddress) {
    throw new Error('worker needs DATABASE_URL, REDIS_URL and TEMPORAL_ADDRESS (npm start sets them)');
  }
  // The SDK would shut every worker down on SIGTERM/SIGINT by itself (the host queue's too, with its
  // short grace): the drain below decides instead.
  // The SDK's metrics on a loopback port of their own, served again on this worker's /metrics.
  const sdk = await sdkMetrics();
  // The SDK's own lines (workflow and activity logs included) through our logger: JSON with trace ids.
  Runtime.install({ shutdownSignals: [], telemetryOptions: sdk.telemetryOptions, logger: new PinoTemporalLogger(log) });
  // Workflows and activities continue the trace of whoever started the workflow (when tracing is on).
  // Each activity's log lines also name its run, tenant and repository (ADR 0028).
  const traced = { ...tracingOptions(), ...activityLogContext };
  const roles = new Set(config.workerRoles);
  const paths = dataPaths(config);
  const hostId = await resolveHostId(config.hostId, paths.hostId);
  const drainMs = config.workerDrainSeconds * 1000;
  // Past the drain period and a minute more, the SDK gives up waiting, so a stop always ends.
  const shutdownForceTime = drainMs + 60_000;
  // The global database and every shard database of DOTGIT_SHARD_MAP (ADR 0025); a bad map stops start-up here.
  const router = await createShardRouter(config);
  const db = router.global;
  // The schema version this code was shipped with, so a contract migration waits for it (docs/migrations.md).
  const schemaClient = await registerSchemaClientEverywhere(router, 'worker', { refreshSeconds: config.schemaClientRefreshSeconds, log });
  await assertSentinelMaster(config.redisUrl); // an unknown sentinel master name stops start-up (ADR 0016)
  const redis = createRedis(config.redisUrl);
  // A shard move's switch (ADR 0026): re-read the placements when it is announced.
  const placements = followShardPlacements(router, redis, { onError: (err) => log.warn({ err }, 'shard placements: re-reading them failed') });
  const connection = await NativeConnection.connect({ address: config.temporalAddress });
  const workers: Worker[] = [];
  const internalSecret = await readInternalSecret(config);

  // Payloads of push events read the repository: planned on the orchestration queue (repositories
  // from before nodes) or on the storage queue of the node holding it.
  const webhookActivities = createWebhookActivities({
    db,
    router,
    reposDir: paths.repos,
    publicUrl: config.publicUrl,
    secrets: new SecretBox(internalSecret, 'webhook-secret'),
    allowHosts: parseAllowHosts(config.webhookAllowHosts),
    timeoutMs: config.webhookTimeoutSeconds * 1000,
  });

  // What the orchestration worker's backups and a storage node's share of them have in common (the
  // store is made by each, only in a worker with that role: it may be S3's client).
  const backupOptions = {
    db,
    router,
    reposDir: paths.repos,
    restoresDir: paths.restores,
    databaseUrl: config.databaseUrl,
    retentionDays: config.backupRetentionDays,
    fullEveryHours: config.backupFullEveryHours,
  };

  let orchestration: Worker | undefined;
  if (roles.has('orchestration')) {
    const workflowCode = workflowCodeOption(config.workflowBundleDir, traced.plugins !== undefined);
    log.info(workflowCode.workflowBundle ? { workflowBundle: workflowCode.workflowBundle.codePath } : { workflowsPath: workflowCode.workflowsPath }, workflowCode.workflowBundle ? 'workflow code: prebuilt bundle' : 'workflow code: bundling workflows/ at start');
    // A client for what activities start or signal (environment locks), made on first use.
    const getClient = lazyTemporalClient(config.temporalAddress, config.temporalNamespace);
    const pipelineFiles = { gitUpstreams: config.gitUpstreams, internalSecret };
    orchestration = await Worker.create({
      connection,
      ...traced,
      namespace: config.temporalNamespace,
      taskQueue: ORCHESTRATION_QUEUE,
      ...workflowCode,
      shutdownGraceTime: drainMs,
      shutdownForceTime,
      // A write refused by a shard move's fence waits and is retried inside the activity (ADR 0026);
      // the move's own activities hold the fence.
      activities: {
        ...retryActivitiesWhenFenced(router, {
          ...createOrchestrationActivities({ db, router, redis, ...pipelineFiles }),
          ...createScheduleActivities({ db, router, ...pipelineFiles, temporal: getClient }),
          ...createDeployActivities({ db, router, source: pipelineFiles, redis, temporal: getClient }),
          ...createConcurrencyActivities({ db, router, redis, temporal: getClient }),
          ...createAlertActivities({
            url: config.alertWebhookUrl,
            secret: config.alertWebhookSecret,
            allowHosts: parseAllowHosts(config.webhookAllowHosts),
            timeoutMs: config.webhookTimeoutSeconds * 1000,
          }),
          ...createMaintenanceActivities({ router, reposDir: paths.repos }),
          ...createHousekeepingActivities({
            db,
            router,
            restoresDir: paths.restores,
            sandboxStateDir: paths.sandbox,
            workspacesDir: paths.workspaces,
            outboxRetentionDays: config.outboxRetentionDays,
            deliveryLogRetentionDays: config.deliveryLogRetentionDays,
            deliveryLogKeep: config.deliveryLogKeep,
            restoreCopyRetentionDays: config.restoreCopyRetentionDays,
          }),
          ...createBackupActivities({
            ...backupOptions,
            store: backupStore(config),
            // Postgres is ours to back up only when npm start runs it (and gave us pg_basebackup).
            pgToolsDir: config.pgToolsDir,
            pgDataDir: config.pgToolsDir ? paths.postgres : undefined,
          }),
          ...createReplicationActivities({ router, reposDir: paths.repos, zones: config.replicaZones, internalSecret }),
          ...createMoveActivities({ db, router, internalSecret }),
          ...createDbFailoverActivities({ patroniUrls: config.patroniUrls }),
          ...webhookActivities,
        }),
        ...createShardMoveActivities({ router, redis }),
      },
    });
    workers.push(orchestration);
    // Where backups run: how old each store's newest backup is (ADR 0028), read at scrape time.
    registerBackupAge({ db, store: backupStore(config), databases: () => router.databases().map((d) => d.name) });
  }

  // Beside a git-server (same data dir): the disk activities of the repositories its node holds.
  let storage: Worker | undefined;
  const nodeId = config.nodeId ?? hostId;
  if (roles.has('storage')) {
    storage = await Worker.create({
      connection,
      ...traced,
      namespace: config.temporalNamespace,
      taskQueue: storageQueue(nodeId),
      shutdownGraceTime: drainMs,
      shutdownForceTime,
      activities: retryActivitiesWhenFenced(router, {
        ...createMaintenanceActivities({ router, reposDir: paths.repos }),
        ...createReplicationActivities({ router, reposDir: paths.repos, zones: config.replicaZones, internalSecret }),
        planWebhookEvent: webhookActivities.planWebhookEvent,
        // The repository parts of backups and drills (ADR 0014): this node's repositories only.
        ...pickNodeParts(
          createBackupActivities({ ...backupOptions, store: backupStore(config), nodeId }),
        ),
      }),
    });
    workers.push(storage);
  }

  let shared: Worker | undefined;
  /** The worker's readiness (`/readyz`) of its sandbox: a driver is installed (set with the sandbox role). */
  let sandboxReady: (() => Promise<unknown>) | undefined;
  let own: Worker | undefined;
  // Jobs in progress here: a draining worker serves its own queue until they end.
  const hostJobs = new HostJobs();
  if (roles.has('sandbox')) {
    // Resolved lazily so a machine without a sandbox still starts; steps then fail with a clear error.
    let driver: SandboxDriver | undefined;
    const getDriver = () => (driver ??= createSandboxDriver(config.sandbox, { stateDir: paths.sandbox, logger: log }));
    // Ready when a sandbox is installed (runsc or bwrap found); its self-test runs with the first step.
    sandboxReady = async () => getDriver();
    // Before this worker takes steps: what a killed predecessor left (its containers still run the
    // step Temporal is about to retry here) goes; workspaces of runs in progress stay for their retries.
    await pruneOrphanedSandboxState({ stateDir: paths.sandbox, workspacesDir: paths.workspaces, activeRunIds: activeRunIdsFromDb(router.databases().map((d) => d.db)) })
      .then((r) => log.info(r, 'orphaned sandbox state pruned'))
      .catch((err) => log.warn({ err }, 'could not prune orphaned sandbox state'));
    if (!roles.has('orchestration')) {
      // The hourly housekeeping workflow prunes the disk of whichever orchestration worker runs it;
      // a sandbox-only host prunes its own (only state older than any step may run).
      setInterval(() => {
        pruneOrphanedSandboxState({ stateDir: paths.sandbox, workspacesDir: paths.workspaces, activeRunIds: activeRunIdsFromDb(router.databases().map((d) => d.db)), olderThanMs: PERIODIC_PRUNE_MIN_AGE_MS })
          .then((r) => log.info(r, 'old sandbox state pruned'))
          .catch((err) => log.warn({ err }, 'could not prune old sandbox state'));
      }, 60 * 60 * 1000).unref();
    }
    const activities = createSandboxActivities({
      db,
      router,
      redis,
      store: createObjectStore(config, paths),
      driver: getDriver,
      // Sources over the network (ADR 0014): a sandbox host needs no repository disk.
      sources: new SourceCache({
        dir: paths.sourceCache,
        maxBytes: config.sourceCacheMb * 1024 * 1024,
        fetch: gitServerArchiveFetcher({ upstreams: config.gitUpstreams, internalSecret }),
      }),
      workspacesDir: paths.workspaces,
      defaultStepTimeoutMs: config.stepTimeoutSeconds * 1000,
      // Mounting needs root; an unprivileged worker keeps workspaces on disk.
      workspaceTmpfsBytes: process.getuid?.() === 0 ? config.workspaceTmpfsMb * 1024 * 1024 : 0,
      secretBox: pipelineSecretBox(config.secretsKey ?? internalSecret),
      // Issue 17 item 7: id-tokens signed with the key ring the gateway publishes (same master secret).
      idTokens: new IdTokenIssuer(new SigningKeys(db, internalSecret), oidcIssuer(config.publicUrl), config.jwtAudience),
      hostId,
      stallBeforeRecord: process.env.DOTGIT_TEST_STALL_BEFORE_STEP_RECORD || undefined,
      cacheMaxRepoBytes: config.cacheRepoMaxMb * 1024 * 1024,
      jobs: hostJobs,
    });
    const sandboxOptions = {
      connection,
      ...traced,
      namespace: config.temporalNamespace,
      activities,
      // A cancel reaches a running step only through a heartbeat's answer: heartbeats go out every
      // second (not the SDK's default of 80% of the heartbeat timeout), so a cancelled sandbox stops
      // within a couple of seconds.
      maxHeartbeatThrottleInterval: '1 second',
      shutdownForceTime,
    } as const;
    // New jobs (their first steps) from the shared queue, only while the jobs in progress here
    // leave room: DOTGIT_SANDBOX_CONCURRENCY bounds jobs (each with its workspace), not just steps.
    shared = await Worker.create({
      ...sandboxOptions,
      taskQueue: SANDBOX_QUEUE,
      shutdownGraceTime: drainMs,
      tuner: {
        activityTaskSlotSupplier: jobSlots(config.sandboxConcurrency, hostJobs),
        workflowTaskSlotSupplier: { type: 'fixed-size', numSlots: 1 },
        localActivityTaskSlotSupplier: { type: 'fixed-size', numSlots: 1 },
        nexusTaskSlotSupplier: { type: 'fixed-size', numSlots: 1 },
      },
    });
    // Jobs in progress here, on slots of their own: with at most that many jobs here, their pinned
    // steps always find a slot within the schedule-to-start timeout that would call the host lost.
    // Shut down only once the drain is over, so its grace is short.
    own = await Worker.create({ ...sandboxOptions, taskQueue: hostQueue(hostId), maxConcurrentActivityTaskExecutions: config.sandboxConcurrency, shutdownGraceTime: '5 seconds' });
    workers.push(shared, own);
  }

  if (orchestration) await ensureSchedules(config.temporalAddress, config.temporalNamespace).catch((err) => log.warn({ err }, 'could not create the schedules'));

  startQueueMetrics({ connection, namespace: config.temporalNamespace, queues: [ORCHESTRATION_QUEUE, SANDBOX_QUEUE], workers, intervalMs: config.queueMetricsIntervalSeconds * 1000, log });

  const app = express();
  // RED on every HTTP server (issue 14 item 2): the worker's answers health, readiness and scrapes.
  app.use(httpMetrics('worker'));
  // Ready (ADR 0028) when its dependencies answer and every Temporal worker it started still polls.
  const readyTemporal = lazyTemporalClient(config.temporalAddress, config.temporalNamespace);
  app.use(
    healthAndMetrics({ postgres: () => pingDatabase(db), redis: () => redis.ping() }, sdk.scrape, {
      postgres: () => pingDatabase(db),
      redis: () => redis.ping(),
      temporal: async () => (await readyTemporal()).workflowService.getSystemInfo({}),
      workers: async () => {
        const stopped = workers.filter((w) => w.getState() !== 'RUNNING').map((w) => `${w.options.taskQueue} ${w.getState()}`);
        if (stopped.length) throw new Error(stopped.join(', '));
      },
      ...(sandboxReady ? { sandbox: sandboxReady } : {}),
    }),
  );
  const server = app.listen(config.workerPort, config.internalHost);

  let draining = false;
  /**
   * SIGTERM/SIGINT: take no new work; running steps, and the rest of jobs begun here, finish within
   * DOTGIT_WORKER_DRAIN_SECONDS; then the host queue stops too (what still runs is stopped and, on
   * another host, started again). A second signal ends the drain at once.
   */
  const stop = (signal: string) => {
    if (draining) {
      log.warn({ signal }, 'second signal: ending the drain now');
      if (own?.getState() === 'RUNNING') own.shutdown();
      return;
    }
    draining = true;
    log.info({ signal, drainSeconds: config.workerDrainSeconds, jobsHere: hostJobs.size }, 'worker draining: no new work; running jobs finish');
    orchestration?.shutdown();
    storage?.shutdown();
    shared?.shutdown();
    const deadline = Date.now() + drainMs;
    const poll = setInterval(() => {
      if (own?.getState() !== 'RUNNING') return clearInterval(poll);
      if (hostJobs.size > 0 && Date.now() < deadline) return;
      if (hostJobs.size > 0) log.warn({ jobs: hostJobs.list() }, 'drain period over; stopping the jobs still here');
      clearInterval(poll);
      own.shutdown();
    }, 250);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  log.info({ roles: [...roles], hostId, nodeId: roles.has('storage') ? nodeId : undefined, queues: workers.map((w) => w.options.taskQueue) }, 'worker running');
  await Promise.all(workers.map((w) => w.run()));
  log.info({ hostId }, 'worker stopped');
  server.close();
  await connection.close();
  await schemaClient.stop();
  await placements.stop();
  await Promise.all([router.close(), redis.quit()]);
  // Nothing is left to do; a stray timer (a driver's, a client's) must not keep a drained host alive.
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
