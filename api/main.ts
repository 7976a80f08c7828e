import { dataPaths, loadConfig } from '../core/config';
import { startTracing } from '../core/tracing';
import { createShardRouter } from '../core/shard-router';
import { followShardPlacements } from '../core/shard-placement-events';
import { registerSchemaClientEverywhere } from '../core/shard-databases';
import { ConflictError, InputError, NotFoundError, UnavailableError } from '../core/errors';
import { createObjectStore } from '../core/object-store-factory';
import { SERVICE_HEADER, signServiceToken } from '../core/internal-identity';
import { createLogger } from '../core/logger';
import { assertSentinelMaster, createRedis } from '../core/redis';
import { readInternalSecret } from '../core/secrets-file';
import { lazyTemporalClient } from '../core/temporal';
import { createApiApp } from './app';
import { IdempotencyStore } from './idempotency';
import { attachEventSockets } from './event-socket';
import { RepoService } from './services/repo-service';
import { placementNodes } from './placement-nodes';
import { fetchFromGitServer } from '../core/git-upstreams';
import { RunService } from './services/run-service';
import { CacheService } from './services/cache-service';
import { RerunService } from './services/rerun-service';
import { BrowseService } from './services/browse-service';
import { gitServerRepoReader } from './repo-reader';
import { ProtectionService } from './services/protection-service';
import { CollaboratorService } from './services/collaborator-service';
import { TenantService } from './services/tenant-service';
import { TokenService } from './services/token-service';
import { SecretService } from './services/secret-service';
import { DeployService } from './services/deploy-service';
import { WebhookService } from './services/webhook-service';
import { CommitStatusService } from './services/commit-status-service';
import { BackupService } from './services/backup-service';
import { ReplicaService } from './services/replica-service';
import { MoveService } from './services/move-service';
import { ShardMoveService } from './services/shard-move-service';
import { AuditService } from './services/audit-service';
import { DatabaseService } from './services/database-service';
import { readRouting } from './read-routing';
import { databaseState, hasReplicas, replicaReads } from '../core/db-replicas';
import { SecretBox } from '../core/secret-box';
import { parseAllowHosts } from '../core/ssrf-guard';
import { pipelineSecretBox } from '../core/pipeline-secrets';
import { pingDatabase } from '../core/stores/server-store';
import { PollingRelay } from '../core/outbox-drainer';
import { drainPipelineStarts } from '../core/pipeline-starts';
import { keepUpstreamConnections } from '../core/keep-alive';

async function main(): Promise<void> {
  const config = loadConfig();
  // Off unless OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set (ADR 0018).
  startTracing('api');
  const log = createLogger('api', config.logLevel);
  if (!config.databaseUrl || !config.redisUrl || !config.temporalAddress) {
    throw new Error('api needs DATABASE_URL, REDIS_URL and TEMPORAL_ADDRESS (npm start sets them)');
  }
  const secret = await readInternalSecret(config);
  // Read-heavy GETs may go to the standbys of a multi-host DATABASE_URL that are this close (ADR 0027).
  replicaReads.maxLagSeconds = config.replicaMaxLagSeconds;
  // The global database and every shard database of DOTGIT_SHARD_MAP (ADR 0025); a bad map stops start-up here.
  const router = await createShardRouter(config);
  const db = router.global;
  // The schema version this code was shipped with, so a contract migration waits for it (docs/migrations.md).
  const schemaClient = await registerSchemaClientEverywhere(router, 'api', { refreshSeconds: config.schemaClientRefreshSeconds, log });
  await assertSentinelMaster(config.redisUrl); // an unknown sentinel master name stops start-up (ADR 0016)
  const redis = createRedis(config.redisUrl);
  // A shard move's switch (ADR 0026): re-read the placements when it is announced.
  const placements = followShardPlacements(router, redis, { onError: (err) => log.warn({ err }, 'shard placements: re-reading them failed') });
  const getTemporal = lazyTemporalClient(config.temporalAddress, config.temporalNamespace);
  // Any git-server serves any repository (it forwards to the node holding it, ADR 0014); one that
  // cannot be reached or is draining passes the call to the next.
  const gitServerPost = async (path: string, body: unknown) =>
    fetchFromGitServer(config.gitUpstreams, path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', [SERVICE_HEADER]: await signServiceToken(secret, 'api') },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
  const refused = async (res: Response) => new Error(`git-server answered ${res.status}: ${await res.text()}`);
  const initBareRepo = async (owner: string, name: string, node: string) => {
    const res = await gitServerPost('/internal/repos', { owner, name, node });
    if (res.status === 409) throw new ConflictError(`repository ${owner}/${name} already exists on disk`);
    // The node it was placed on is down: the git-server's message names it.
    if (res.status === 503) throw new UnavailableError(((await res.json().catch(() => ({}))) as { error?: { message?: string } }).error?.message ?? 'the git server is unavailable', 10);
    if (!res.ok) throw await refused(res);
  };
  const setDefaultBranch = async (owner: string, name: string, branch: string) => {
    const res = await gitServerPost('/internal/repos/default-branch', { owner, name, branch });
    const message = async () => ((await res.json().catch(() => ({}))) as { error?: { message?: string } }).error?.message ?? `git-server answered ${res.status}`;
    if (res.status === 404) throw new NotFoundError(await message());
    if (res.status === 400) throw new InputError(await message());
    if (res.status === 503) throw new UnavailableError(await message(), 10);
    if (!res.ok) throw await refused(res);
  };
  const resolveRef = async (owner: string, name: string, ref: string) => {
    const res = await gitServerPost('/internal/repos/resolve', { owner, name, ref });
    if (res.status === 404) return undefined;
    if (!res.ok) throw await refused(res);
    return (await res.json()) as { ref: string; commit: string };
  };
  const readPipelineFile = async (owner: string, name: string, commit: string) => {
    const res = await gitServerPost('/internal/repos/pipeline-file', { owner, name, commit });
    if (res.status === 413) throw new InputError(((await res.json()) as { error: { message: string } }).error.message);
    if (!res.ok) throw await refused(res);
    return ((await res.json()) as { text: string | null }).text;
  };
  const deployService = new DeployService(router, redis, getTemporal, resolveRef, readPipelineFile);
  // Runs started through the api are written to its own outbox in the tenant's shard (ADR 0024,
  // 0025): this relay starts their workflows, every database each pass (at once when kicked).
  const runRequests = new PollingRelay('run request relay', () => Promise.all(router.databases().map((d) => drainPipelineStarts(d.db, 'run_request_outbox', getTemporal, log))), log);
  runRequests.start();
  const runService = new RunService(router, redis, createObjectStore(config, dataPaths(config)), getTemporal, resolveRef, readPipelineFile, () => runRequests.kick());
  const app = createApiApp(
    {
      tenants: new TenantService(router),
      tokens: new TokenService(router, redis),
      repos: new RepoService(router, initBareRepo, config.publicUrl, placementNodes(config.gitUpstreams, secret), config.replicaNodes, setDefaultBranch),
      protections: new ProtectionService(router),
      collaborators: new CollaboratorService(router),
      deploys: deployService,
      secrets: new SecretService(router, pipelineSecretBox(config.secretsKey ?? secret)),
      webhooks: new WebhookService(router, new SecretBox(secret, 'webhook-secret'), parseAllowHosts(config.webhookAllowHosts), getTemporal),
      commitStatuses: new CommitStatusService(router, config.publicUrl),
      backups: new BackupService(router, getTemporal),
      replicas: new ReplicaService(router, config.replicaZones),
      moves: new MoveService(router, getTemporal, config.moveGraceSeconds),
      shardMoves: new ShardMoveService(router, getTemporal, { graceSeconds: config.shardMoveGraceSeconds, batchRows: config.shardMoveBatchRows }),
      audit: new AuditService(router),
      database: new DatabaseService(router, getTemporal, config.patroniUrls),
      caches: new CacheService(router, createObjectStore(config, dataPaths(config)), config.cacheRepoMaxMb * 1024 * 1024),
      reruns: new RerunService(router, redis, getTemporal),
      browse: new BrowseService(router, gitServerRepoReader(gitServerPost)),
      runs: runService,
    },
    {
      log,
      internalSecret: secret,
      idempotencyKeys: new IdempotencyStore(db, new SecretBox(secret, 'idempotency-answer')),
      healthChecks: { postgres: () => pingDatabase(db), redis: () => redis.ping(), temporal: async () => (await getTemporal()).workflowService.getSystemInfo({}) },
      // The primary and each standby's lag, when DATABASE_URL lists several hosts.
      healthDetails: async () => {
        const database = await databaseState(db);
        return database ? { database } : {};
      },
      // Only with standbys to read from: the write marks cost a Redis call per write request.
      readRouting: router.databases().some((d) => hasReplicas(d.db)) ? readRouting({ redis, maxLagSeconds: config.replicaMaxLagSeconds }) : undefined,
    },
  );
  const server = keepUpstreamConnections(app.listen(config.apiPort, config.internalHost, () => log.info({ port: config.apiPort }, 'api listening')));
  attachEventSockets(server, {
    internalSecret: secret,
    log,
    route: (path, principal) => {
      const m = /^\/api\/v1\/runs\/([^/]+)\/events$/.exec(path);
      if (m) return (after, signal) => runService.events(principal, decodeURIComponent(m[1]), after, signal);
      const d = /^\/api\/v1\/deploys\/([^/]+)\/events$/.exec(path);
      if (d) return (after, signal) => deployService.events(principal, decodeURIComponent(d[1]), after, signal);
      return undefined;
    },
  });
  const stop = () => {
    server.close();
    void Promise.allSettled([runRequests.stop(), placements.stop(), schemaClient.stop().then(() => router.close()), redis.quit()]).then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
