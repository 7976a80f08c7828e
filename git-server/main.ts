import { dataPaths, loadConfig } from '../core/config';
import { assertGitVersion } from '../core/git';
import { startTracing } from '../core/tracing';
import { createDb } from '../core/db';
import { createShardRouter } from '../core/shard-router';
import { followShardPlacements } from '../core/shard-placement-events';
import { registerSchemaClientEverywhere } from '../core/shard-databases';
import { createLogger } from '../core/logger';
import { lazyTemporalClient } from '../core/temporal';
import { readInternalSecret } from '../core/secrets-file';
import { createGitServerApp } from './app';
import { createObjectStore } from '../core/object-store-factory';
import { OutboxRelay } from './outbox-relay';
import { ReplicationRelay } from './replication-relay';
import { PollingRelay } from '../core/outbox-drainer';
import { registerOutboxBacklog } from './outbox-metrics';
import { PackCache } from './pack-cache';
import { tuneHeapForStreaming } from './heap-growth';
import { RepoGenerations } from './repo-generation';
import { assertSentinelMaster, createRedis } from '../core/redis';
import { maintenanceWorkflowId } from '../core/run-types';
import { startWorkflow } from '../core/workflow-starter';
import { instanceName, PushReconciler } from './push-journal';
import http from 'node:http';
import { HttpDrain, stopOnSignals } from '../core/drain';
import { resolveHostId } from '../core/host-id';
import { claimUnplacedRepos, registerNode, startHeartbeat } from '../core/storage-nodes';
import { databaseNow, pingDatabase } from '../core/stores/server-store';
import { keepUpstreamConnections } from '../core/keep-alive';

/** Unfinished journal rows of other instances are reconciled only this old: their push may still be under way. */
const RECONCILE_GRACE_MS = 60_000;
/** Finished journal rows are pruned on the first pass and then every this many passes. */
const PRUNE_EVERY_PASSES = 100;

async function main(): Promise<void> {
  // Packs stream through this process: fewer full GCs over their short-lived buffers (heap-growth.ts).
  tuneHeapForStreaming();
  const config = loadConfig();
  // Off unless OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set (ADR 0018).
  startTracing('git-server');
  const log = createLogger('git-server', config.logLevel);
  if (!config.databaseUrl || !config.temporalAddress) throw new Error('git-server needs DATABASE_URL and TEMPORAL_ADDRESS (npm start sets them)');
  await assertGitVersion();
  // The global database and every shard database of DOTGIT_SHARD_MAP (ADR 0025); a bad map stops start-up here.
  const router = await createShardRouter(config);
  const db = router.global;
  // The schema version this code was shipped with, so a contract migration waits for it (docs/migrations.md).
  const schemaClient = await registerSchemaClientEverywhere(router, 'git-server', { refreshSeconds: config.schemaClientRefreshSeconds, log });
  const getTemporal = lazyTemporalClient(config.temporalAddress, config.temporalNamespace);
  // Pushes commit outbox rows; these start their workflows (at once when kicked, else every second).
  // Outbox rows are written in the tenant's shard (ADR 0025): every pass drains every database.
  const outboxes = router.databases().map((d) => new OutboxRelay(d.db, getTemporal, log));
  const relay = new PollingRelay('outbox relay', () => Promise.all(outboxes.map((o) => o.drainAll())), log);
  const replicationOutboxes = router.databases().map((d) => new ReplicationRelay(d.db, getTemporal));
  const replication = new PollingRelay('replication relay', () => Promise.all(replicationOutboxes.map((o) => o.drain())), log);
  // The outboxes' backlog on /metrics (ADR 0028), read from every database when scraped.
  registerOutboxBacklog(() => router.databases().map((d) => d.db));
  if (config.redisUrl) await assertSentinelMaster(config.redisUrl); // an unknown sentinel master name stops start-up (ADR 0016)
  const redis = config.redisUrl ? createRedis(config.redisUrl, { commandTimeoutMs: config.gitRedisTimeoutMs }) : undefined;
  // A shard move's switch (ADR 0026): re-read the placements when it is announced.
  const placements = redis ? followShardPlacements(router, redis, { onError: (err) => log.warn({ err }, 'shard placements: re-reading them failed') }) : undefined;
  const instance = instanceName(config.gitPort);
  // Holds repository write locks while Redis does not answer: apart from the pool the hooks use.
  const lockDb = createDb(config.databaseUrl, 16);
  // This git-server is a storage node (ADR 0014).
  const node = { id: config.nodeId ?? (await resolveHostId(config.hostId, dataPaths(config).hostId)), url: config.nodeUrl };
  // Push journals are written in the tenant's shard (ADR 0025): one reconciler per database.
  const reconcilers = router.databases().map(
    (d) =>
      new PushReconciler({
        db: d.db,
        reposDir: dataPaths(config).repos,
        nodeId: node.id,
        log,
        replicate: config.replicaZones.length > 0,
        onRunsCreated: () => relay.kick(),
        onReplicationQueued: () => replication.kick(),
      }),
  );
  // At start-up this instance's own unfinished rows are recovered at once (the process that wrote
  // them is gone); after that, every pass also takes other instances' rows past the grace period.
  const startedAt = await databaseNow(db);
  let firstPass = true;
  let passes = 0;
  const reconciliation = new PollingRelay(
    'push reconciliation',
    async () => {
      const scope = { graceMs: RECONCILE_GRACE_MS, ownRowsBefore: firstPass ? { instance, before: startedAt } : undefined };
      const results = await Promise.all(reconcilers.map((x) => x.reconcile(scope)));
      const r = { recovered: results.reduce((n, x) => n + x.recovered, 0), dropped: results.reduce((n, x) => n + x.dropped, 0) };
      if (passes++ % PRUNE_EVERY_PASSES === 0) await Promise.all(reconcilers.map((x) => x.prune()));
      firstPass = false;
      if (r.recovered + r.dropped > 0) log.info(r, 'push journal reconciled');
    },
    log,
    config.pushReconcileSeconds * 1000,
  );
  const packCache = new PackCache({
    dir: dataPaths(config).packCache,
    enabled: config.packCache === 'on',
    ttlMs: config.packCacheTtlSeconds * 1000,
    maxDiskBytes: config.packCacheMaxBytes,
    memoryEntryBytes: 1024 * 1024,
    memoryMaxBytes: 64 * 1024 * 1024,
    redis,
  });

  // Registered, heartbeating, owner of what its disk holds from before nodes.
  const { sharedWith } = await registerNode(db, node.id, node.url);
  if (sharedWith) log.warn({ node: node.id, url: node.url, sharedWith }, 'another live git-server heartbeats under this node id: both must serve one storage root');
  const claimed = await claimUnplacedRepos(router, node.id, dataPaths(config).repos);
  log.info({ node: node.id, url: node.url, claimed: claimed.length }, 'storage node registered');
  const stopHeartbeat = startHeartbeat(db, node.id, node.url, (err) => log.warn({ err }, 'storage node heartbeat failed'));

  const app = createGitServerApp({
    db,
    router,
    log,
    reposDir: dataPaths(config).repos,
    internalSecret: await readInternalSecret(config),
    publicUrl: config.publicUrl,
    lfsStore: createObjectStore(config, dataPaths(config)),
    onPushRecorded: () => relay.kick(),
    replicaZones: config.replicaZones,
    onReplicationQueued: () => replication.kick(),
    onMaintenanceDue: (target) => {
      // Best effort: the hourly sweep covers a start that fails here.
      getTemporal()
        .then((client) =>
          startWorkflow(client, 'repoMaintenance', maintenanceWorkflowId(target.tenant, target.repo), [target], { workflowIdConflictPolicy: 'USE_EXISTING' }),
        )
        .catch((err) => log.warn({ err, repo: `${target.tenant}/${target.repo}` }, 'could not start maintenance'));
    },
    packCache,
    generations: new RepoGenerations(redis),
    redis,
    lockDb,
    instance,
    stallAfterRefUpdate: process.env.DOTGIT_TEST_STALL_AFTER_REF_UPDATE || undefined,
    limits: { maxPushBytes: config.maxPushBytes, uploadPackConcurrency: config.uploadPackConcurrency, uploadPackQueue: config.uploadPackQueue },
    node,
    healthChecks: { postgres: () => pingDatabase(db) },
    // Ready when what pushes need answers: the relays start workflows in Temporal.
    readyChecks: {
      postgres: () => pingDatabase(db),
      ...(redis ? { redis: () => redis.ping() } : {}),
      temporal: async () => (await getTemporal()).workflowService.getSystemInfo({}),
    },
  });
  // The pushes in flight finish (their hooks talk to this process over their own channel, ADR 0047);
  // new requests, on new connections too, are told it is draining.
  const drain = new HttpDrain({ graceSeconds: config.drainSeconds, keepListening: true, healthPath: '/healthz' });
  const server = drain.add(keepUpstreamConnections(http.createServer(drain.handler(app))));
  server.listen(config.gitPort, config.internalHost, () => log.info({ port: config.gitPort }, 'git-server listening'));
  relay.start();
  replication.start();
  reconciliation.start();
  stopOnSignals({
    name: 'git-server',
    log,
    drain,
    graceSeconds: config.drainSeconds,
    // After the pushes: their outbox rows are started and their journal rows settled. A relay
    // stops after the pass it is in (each claimed batch commits in one transaction); if that
    // outlasts the grace, exiting rolls the open transaction back and the rows stay for another
    // instance (SKIP LOCKED claims), so nothing is half-written.
    after: async (deadline) => {
      stopHeartbeat(); // requests in flight are done: the others see this node down 10 s from now
      const stopped = Promise.all([relay.stop(), replication.stop(), reconciliation.stop()]).then(() => true);
      const left = Math.max(deadline - Date.now(), 2000);
      if (!(await Promise.race([stopped, new Promise<false>((r) => setTimeout(() => r(false), left).unref())]))) {
        log.warn('relays still in a pass at the end of the drain; their open batch is left for another instance');
      }
    },
    close: () => Promise.allSettled([placements?.stop(), schemaClient.stop().then(() => router.close()), lockDb.end(), redis?.quit()]),
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
