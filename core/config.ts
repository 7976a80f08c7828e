import path from 'node:path';
import { z } from 'zod';
import { DEFAULT_NAMESPACE } from '../temporal-config/dev-server';
import { assertObjectKey } from './object-store';
import { parseReplicaZonesEnv, replicaZonesSchema } from './replica-zones';
import { parseRedisUrl } from './redis-url';
import { shardMapSchema } from './shard-map';

/** `DOTGIT_OBJECT_STORE` and, for `s3`, the `DOTGIT_S3_*` variables (see README). */
const objectStoreSchema = z.discriminatedUnion('driver', [
  // `dir`: DOTGIT_FS_OBJECTS_DIR, so processes with data dirs of their own share one store (as they would a bucket).
  z.strictObject({ driver: z.literal('fs'), dir: z.string().min(1).optional() }),
  z
    .strictObject({
      driver: z.literal('s3'),
      bucket: z
        .string({ error: 'DOTGIT_S3_BUCKET is required when DOTGIT_OBJECT_STORE=s3' })
        .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'DOTGIT_S3_BUCKET is not a valid bucket name (3-63 of a-z 0-9 . -)'),
      endpoint: z.url({ protocol: /^https?$/, error: 'DOTGIT_S3_ENDPOINT must be an http(s) URL' }).optional(),
      region: z.string().min(1),
      prefix: z.string().refine((p) => {
        try {
          const trimmed = p.replace(/\/+$/, '');
          if (trimmed) assertObjectKey(trimmed);
          return true;
        } catch {
          return false;
        }
      }, 'DOTGIT_S3_PREFIX must be a relative path without empty, "." or ".." parts'),
      accessKeyId: z.string().optional(),
      secretAccessKey: z.string().optional(),
      forcePathStyle: z.enum(['true', 'false', '1', '0'], { error: 'DOTGIT_S3_FORCE_PATH_STYLE must be true or false' }).transform((v) => v === 'true' || v === '1'),
    })
    .refine((s) => !s.accessKeyId === !s.secretAccessKey, {
      message: 'set both DOTGIT_S3_ACCESS_KEY_ID and DOTGIT_S3_SECRET_ACCESS_KEY, or neither (the AWS default credential chain)',
      path: ['accessKeyId'],
    }),
], { error: 'DOTGIT_OBJECT_STORE must be fs or s3' });

/**
 * The one configuration schema of dotgit. Every process reads its settings from environment
 * variables through `loadConfig`, validated at start-up; the README's configuration table lists
 * them with these defaults.
 */
const configSchema = z.object({
  /** `DOTGIT_DATA_DIR` — all state of the embedded defaults (repos, objects, Postgres, Redis, Temporal). Default `.data`. */
  dataDir: z.string().min(1),
  /** `PORT` — the gateway's listening port. Default 8080. */
  port: z.coerce.number().int().min(0).max(65535),
  /** `DOTGIT_HOST` — address the gateway binds to (the only public listener). Default 127.0.0.1. */
  host: z.string().min(1),
  /** `DOTGIT_INTERNAL_HOST` — address api, git-server and worker bind to and are called on. Default 127.0.0.1. */
  internalHost: z.string().min(1),
  /** `DOTGIT_PUBLIC_URL` — base URL users reach the gateway on (clone URLs, run links). Default `http://127.0.0.1:$PORT`. */
  publicUrl: z.string().url(),
  /** `DOTGIT_API_PORT` — internal port of the api service. Default 8081. */
  apiPort: z.coerce.number().int().min(0).max(65535),
  /** `DOTGIT_GIT_PORT` — internal port of the git-server. Default 8082. */
  gitPort: z.coerce.number().int().min(0).max(65535),
  /** `DOTGIT_WORKER_PORT` — the worker's health/metrics port. Default 8083. */
  workerPort: z.coerce.number().int().min(0).max(65535),
  /** `DATABASE_URL` — Postgres; unset means the embedded Postgres under the data dir. */
  databaseUrl: z.string().optional(),
  /** `DOTGIT_SHARD_MAP` — JSON: databases by name and the database of each of the 8 logical shards (core/shard-map.ts, ADR 0025). Unset: all 8 on `DATABASE_URL`. */
  shardMap: shardMapSchema.optional(),
  /**
   * `REDIS_URL` — Redis; unset means a redis-server started under the data dir.
   * `redis-sentinel://host:port,…/<master name>` finds the master through Sentinel (ADR 0016).
   */
  redisUrl: z
    .string()
    .superRefine((url, ctx) => {
      try {
        parseRedisUrl(url);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    })
    .optional(),
  /** `TEMPORAL_ADDRESS` — Temporal frontend host:port; unset means the Temporal CLI dev server. */
  temporalAddress: z.string().optional(),
  /** `DOTGIT_POSTGRES_PORT` — port of the embedded Postgres (when `DATABASE_URL` is unset). Default 15432. */
  postgresPort: z.coerce.number().int().min(0).max(65535),
  /** `DOTGIT_REDIS_PORT` — port of the redis-server we start (when `REDIS_URL` is unset). Default 16379. */
  redisPort: z.coerce.number().int().min(0).max(65535),
  /** `TEMPORAL_PORT` — frontend port of the dev server (when `TEMPORAL_ADDRESS` is unset). Default 7233. */
  temporalPort: z.coerce.number().int().min(0).max(65535),
  /** `TEMPORAL_NAMESPACE` — default `dotgit`. */
  temporalNamespace: z.string().min(1),
  /** `TEMPORAL_UI_PORT` — Web UI port of the dev server. Default 8233. */
  temporalUiPort: z.coerce.number().int().min(0).max(65535),
  /** `TEMPORAL_METRICS_PORT` — the dev server's Prometheus `/metrics` port (scraped with `--observability`). Default 8234. */
  temporalMetricsPort: z.coerce.number().int().min(0).max(65535),
  /** `DOTGIT_INTERNAL_SECRET` — HMAC key of the internal identity the gateway signs; default: generated once into the data dir. */
  internalSecret: z.string().min(32).optional(),
  /** `DOTGIT_SECRETS_KEY` — master key that seals pipeline secrets (AES-256-GCM); default: the internal secret. */
  secretsKey: z.string().min(32, 'DOTGIT_SECRETS_KEY must be at least 32 characters').optional(),
  /** `DOTGIT_SANDBOX` — `auto` (runsc, else bubblewrap), `runsc`, `bwrap`, or `none` (development only, insecure). Default `auto`. */
  sandbox: z.enum(['auto', 'runsc', 'bwrap', 'none']),
  /** `DOTGIT_STEP_TIMEOUT` — default wall-clock limit of one step, in seconds. Default 600. */
  stepTimeoutSeconds: z.coerce.number().int().positive(),
  /**
   * `DOTGIT_SANDBOX_CONCURRENCY` — steps one worker runs at once (its sandbox queue's activity
   * slots; workspace clean-ups take a slot too). Default 8: a step spends much of its slot waiting
   * (checkout, log upload, database), and with 4 a burst of 200 trivial runs drained at 2.5 runs/s
   * on 2 cores against 4.0 with 8 (BENCHMARKS.md, issue 5).
   */
  sandboxConcurrency: z.coerce.number().int().min(1, 'DOTGIT_SANDBOX_CONCURRENCY must be 1..64').max(64, 'DOTGIT_SANDBOX_CONCURRENCY must be 1..64'),
  /** `DOTGIT_WORKSPACE_TMPFS_MB` — size cap of each job's tmpfs workspace (a worker running as root mounts one per job); 0 keeps workspaces on disk. Default 2048. */
  workspaceTmpfsMb: z.coerce.number().int().min(0).max(1024 * 1024),
  /** `DOTGIT_SOURCE_CACHE_MB` — disk budget of a sandbox host's cache of fetched commit archives (`cache/sources`; least recently used go first). Default 1024. */
  sourceCacheMb: z.coerce.number().int().min(1, 'DOTGIT_SOURCE_CACHE_MB must be at least 1').max(1024 * 1024),
  /** `DOTGIT_CACHE_REPO_MAX_MB` — pipeline dependency caches a repository keeps in the object store (issue 17; least recently used evicted). Default 1024. */
  cacheRepoMaxMb: z.coerce.number().int().min(1, 'DOTGIT_CACHE_REPO_MAX_MB must be at least 1').max(1024 * 1024),
  /** `DOTGIT_MAX_PUSH_BYTES` — largest pack a push may send (git's receive.maxInputSize). Default 2 GiB. */
  maxPushBytes: z.coerce.number().int().positive(),
  /** `DOTGIT_UPLOAD_PACK_CONCURRENCY` — fetches served at once per repository. Default 8. */
  uploadPackConcurrency: z.coerce.number().int().positive(),
  /** `DOTGIT_UPLOAD_PACK_QUEUE` — fetches that may wait per repository before 429. Default 64. */
  uploadPackQueue: z.coerce.number().int().min(0),
  /** `DOTGIT_PACK_CACHE` — `on` shares fetch answers between identical requests (Gitaly-style); `off` for comparison. Default `on`. */
  packCache: z.enum(['on', 'off']),
  /** `DOTGIT_PACK_CACHE_TTL` — seconds a cached fetch answer is served. Default 300. */
  packCacheTtlSeconds: z.coerce.number().int().positive(),
  /** `DOTGIT_PACK_CACHE_MAX_BYTES` — disk budget of the pack cache. Default 1 GiB. */
  packCacheMaxBytes: z.coerce.number().int().positive(),
  /**
   * `DOTGIT_PACK_CACHE_HANDOFF` — `on`: the gateway streams cached fetch answers from the pack
   * cache's folder itself when it reads the git-server's folder (ADR 0040); `off`: every answer is
   * relayed by the git-server. Default `on`.
   */
  packCacheHandoff: z.enum(['on', 'off']),
  /**
   * `DOTGIT_GIT_REDIS_TIMEOUT_MS` — the longest any one Redis call of the git-server (write lock,
   * repository generations, pack-cache index) may take before it counts as failed: the lock falls
   * back to a Postgres advisory lock, generations fail open (the cache misses). Default 250.
   */
  gitRedisTimeoutMs: z.coerce.number().int().min(10).max(60_000),
  /** `DOTGIT_PUSH_RECONCILE_INTERVAL` — seconds between the git-server's passes over the push journal (recovering pushes a crash left unrecorded). Default 30. */
  pushReconcileSeconds: z.coerce.number().int().min(1).max(3600),
  /** `DOTGIT_JWT_ISSUER` — `iss` of the JWTs `POST /oauth/token` issues. Default: the public URL. */
  jwtIssuer: z.string().min(1),
  /** `DOTGIT_JWT_AUDIENCE` — `aud` our JWTs carry and require. Default `dotgit`. */
  jwtAudience: z.string().min(1),
  /** `DOTGIT_JWT_TTL` — lifetime of issued JWTs in seconds. Default 600. */
  jwtTtlSeconds: z.coerce.number().int().min(30).max(86400),
  /** `DOTGIT_EXTERNAL_ISSUERS` — JSON list of accepted outside issuers: `[{"issuer","jwksUrl","audience","algorithms":["RS256"],"usernameClaim"?}]`. Default none. */
  externalIssuers: z.array(
    z.strictObject({ issuer: z.string().min(1), jwksUrl: z.string().url(), audience: z.string().min(1), algorithms: z.array(z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384', 'EdDSA'])).min(1), usernameClaim: z.string().optional() }),
  ),
  /** `DOTGIT_RATE_LIMITS` — JSON of per-class limits and per-tenant overrides (see README); unset = the defaults. */
  rateLimits: z.unknown(),
  /** `DOTGIT_RATE_LIMIT_FAIL` — when Redis cannot answer within `DOTGIT_GATEWAY_REDIS_TIMEOUT_MS`: `open` (allow) or `closed` (503). Default `open`. */
  rateLimitFail: z.enum(['open', 'closed']),
  /**
   * `DOTGIT_GATEWAY_REDIS_TIMEOUT_MS` — the longest any Redis call on a gateway request's path (rate
   * limits, revocation tombstones, failed-authentication counts) may take; then the request fails
   * open or closed as `DOTGIT_RATE_LIMIT_FAIL` says. Default 100.
   */
  gatewayRedisTimeoutMs: z.coerce.number().int().min(10).max(10_000),
  /** `DOTGIT_OBJECT_STORE` — `fs` (files under the data dir) or `s3`; where artifacts, logs and LFS objects live. Default `fs`. */
  objectStore: objectStoreSchema,
  /** `DOTGIT_TOKEN_CACHE_TTL` — seconds the gateway keeps an API token lookup in memory (revocation still acts at once); 0 = off. Default 60. */
  tokenCacheTtlSeconds: z.coerce.number().int().min(0).max(3600),
  /** `DOTGIT_CONSOLE_SESSION_TTL` — seconds a web console session lasts (it also ends with its token). Default 604800 (7 days). */
  consoleSessionTtlSeconds: z.coerce.number().int().min(60).max(31_536_000),
  /** `DOTGIT_TEMPORAL_UI_URL` — the Temporal Web UI's workflow list, for the console's links to a run's workflow; npm start sets it. */
  temporalUiUrl: z.string().url().optional(),
  /** `DOTGIT_ROUTES_FILE` — YAML/JSON of extra gateway routes (prefixes, header rules, upstreams); see README. */
  routesFile: z.string().optional(),
  /** `DOTGIT_TLS_CERT` / `DOTGIT_TLS_KEY` — PEM files; set both to add an HTTPS listener on `DOTGIT_TLS_PORT`. */
  tlsCert: z.string().optional(),
  tlsKey: z.string().optional(),
  /** `DOTGIT_TLS_PORT` — HTTPS port. Default 8443. */
  tlsPort: z.coerce.number().int().min(0).max(65535),
  /** `DOTGIT_TLS_CLIENT_CA` — PEM of the CA that signs client certificates (mutual TLS). */
  tlsClientCa: z.string().optional(),
  /** `DOTGIT_TLS_CLIENT_CERT` — `optional` (a certificate is one more way in) or `required`. Default `optional`. */
  tlsClientCert: z.enum(['optional', 'required']),
  /** `DOTGIT_WEBHOOK_ALLOW_HOSTS` — comma list of webhook URL hosts (as written in the URL) exempt from the SSRF guard; for tests and trusted internal receivers. Default none. */
  webhookAllowHosts: z.string(),
  /** `DOTGIT_WEBHOOK_TIMEOUT` — seconds one webhook delivery may take. Default 10. */
  webhookTimeoutSeconds: z.coerce.number().int().min(1).max(60),
  /** `DOTGIT_ALERT_WEBHOOK_URL` — where platform alerts (a failed restore drill) are POSTed as JSON; unset: metrics only. */
  alertWebhookUrl: z.string().url('DOTGIT_ALERT_WEBHOOK_URL must be an http(s) URL').refine((u) => /^https?:\/\//.test(u), 'DOTGIT_ALERT_WEBHOOK_URL must be an http(s) URL').optional(),
  /** `DOTGIT_ALERT_WEBHOOK_SECRET` — HMAC key of the alerts' `X-Hub-Signature-256`; unset: unsigned. */
  alertWebhookSecret: z.string().min(1).optional(),
  /** `DOTGIT_BACKUP_RETENTION_DAYS` — backups and archived WAL older than this are removed (point-in-time window). Default 7. */
  backupRetentionDays: z.coerce.number().positive(),
  /** `DOTGIT_BACKUP_FULL_EVERY_HOURS` — a new base (full bundle, Postgres base backup) after this many hours; increments between. Default 24. */
  backupFullEveryHours: z.coerce.number().positive(),
  /** `DOTGIT_OUTBOX_RETENTION_DAYS` — outbox rows (push, webhook, replication) already handed on are deleted this long after. Default 7. */
  outboxRetentionDays: z.coerce.number().positive('DOTGIT_OUTBOX_RETENTION_DAYS must be a positive number of days'),
  /** `DOTGIT_DELIVERY_LOG_RETENTION_DAYS` — webhook delivery-log rows older than this are deleted (beyond each hook's newest `DOTGIT_DELIVERY_LOG_KEEP`). Default 30. */
  deliveryLogRetentionDays: z.coerce.number().positive('DOTGIT_DELIVERY_LOG_RETENTION_DAYS must be a positive number of days'),
  /** `DOTGIT_DELIVERY_LOG_KEEP` — newest delivery-log rows every webhook keeps whatever their age, so a quiet hook keeps its history. Default 100. */
  deliveryLogKeep: z.coerce.number().int().min(0, 'DOTGIT_DELIVERY_LOG_KEEP must be 0 or more'),
  /** `DOTGIT_RESTORE_COPY_RETENTION_DAYS` — restored copies under `restores/` (API restores, drills kept after failing) are deleted this long after they finished; never one still running or whose Postgres runs. Default 1. */
  restoreCopyRetentionDays: z.coerce.number().positive('DOTGIT_RESTORE_COPY_RETENTION_DAYS must be a positive number of days'),
  /** `DOTGIT_MOVE_GRACE_SECONDS` — after a repository moved to another storage node, its old node keeps the copy this long (reads begun there finish), then drops it. Default 300. */
  moveGraceSeconds: z.coerce.number().int().min(0, 'DOTGIT_MOVE_GRACE_SECONDS must be 0 or more seconds'),
  /** `DOTGIT_SHARD_MOVE_GRACE_SECONDS` — after a shard moved to another database (ADR 0026), how long its old copy stays (fenced) before it is deleted, for processes that have not re-read the placements yet. Default 300. */
  shardMoveGraceSeconds: z.coerce.number().int().min(0, 'DOTGIT_SHARD_MOVE_GRACE_SECONDS must be 0 or more seconds'),
  /** `DOTGIT_SHARD_MOVE_BATCH_ROWS` — rows a shard move copies (and deletes) per batch. Default 1000. */
  shardMoveBatchRows: z.coerce.number().int().min(1, 'DOTGIT_SHARD_MOVE_BATCH_ROWS must be 1 to 100000').max(100_000, 'DOTGIT_SHARD_MOVE_BATCH_ROWS must be 1 to 100000'),
  /** `DOTGIT_SCHEMA_CLIENT_REFRESH_SECONDS` — how often every process refreshes its row in `schema_clients` (the schema version it was shipped with; docs/migrations.md). Default 30. */
  schemaClientRefreshSeconds: z.coerce.number().int().min(1, 'DOTGIT_SCHEMA_CLIENT_REFRESH_SECONDS must be 1 or more seconds'),
  /** `DOTGIT_SCHEMA_CLIENT_STALE_SECONDS` — a process not seen for this long no longer holds back a contract migration (it crashed); keep it well above the refresh. Default 120. */
  schemaClientStaleSeconds: z.coerce.number().int().min(1, 'DOTGIT_SCHEMA_CLIENT_STALE_SECONDS must be 1 or more seconds'),
  /** `DOTGIT_PG_TOOLS_DIR` — directory with `pg_basebackup` of the server's version; `npm start` installs and sets it. Unset: no Postgres base backups. */
  pgToolsDir: z.string().optional(),
  /** `DOTGIT_REPLICA_ZONES` — zones every repository is replicated to after each push (JSON list of `{name, root}` / `{name, url}`, or `name=/root,name=http://…`). Default none. */
  replicaZones: replicaZonesSchema,
  /** `DOTGIT_REPLICA_NODES` — how many other storage nodes (of the api's `DOTGIT_GIT_UPSTREAMS`, least-used, up) get a replica of each new repository; reads fail over to an up-to-date one while the holder is down (ADR 0014). Default 0: none. */
  replicaNodes: z.coerce.number().int().min(0, 'DOTGIT_REPLICA_NODES must be 0..8').max(8, 'DOTGIT_REPLICA_NODES must be 0..8'),
  /**
   * `DOTGIT_WORKER_ROLES` — comma list of what a worker process does: `orchestration` (workflows and
   * their records), `storage` (activities that read the repositories' disk: loading pipeline files,
   * maintenance, backup, replication), `sandbox` (pipeline steps). Default all three (`npm start`).
   * A `storage` worker also polls its node's queue `dotgit-storage@<DOTGIT_NODE_ID or host id>`
   * (run it beside each git-server, on the same data dir); `orchestration` needs `storage` too.
   */
  workerRoles: z
    .array(z.enum(['orchestration', 'sandbox', 'storage'], { error: 'DOTGIT_WORKER_ROLES lists orchestration, sandbox or storage' }))
    .min(1, 'DOTGIT_WORKER_ROLES names at least one role')
    .refine((r) => !r.includes('orchestration') || r.includes('storage'), 'DOTGIT_WORKER_ROLES: orchestration needs storage too (repositories from before storage nodes still have their disk activities on the orchestration queue)')
    .transform((r) => [...new Set(r)]),
  /** `DOTGIT_HOST_ID` — the worker's stable host id (steps report it as `host`; its own task queue is `dotgit-sandbox@<id>`). Default: made once from the host name and saved in the data dir (`host-id`). */
  hostId: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'DOTGIT_HOST_ID must be 1-63 of A-Z a-z 0-9 . _ - starting with a letter or digit')
    .optional(),
  /**
   * `DOTGIT_WORKFLOW_BUNDLE_DIR` — a folder with the prebuilt workflow bundles (`workflows.js`, and
   * `workflows-traced.js` for tracing; made by `infra/build.cjs`, ADR 0029): the worker loads one
   * instead of bundling workflows/ at start. `npm start` sets it to `dist/`. Default unset (bundle at start).
   */
  workflowBundleDir: z.string().min(1).optional(),
  /** `DOTGIT_WORKER_DRAIN_SECONDS` — after SIGTERM, how long a worker lets running steps (and the rest of their jobs) finish before it stops them. Default 600. */
  workerDrainSeconds: z.coerce.number().int().min(0, 'DOTGIT_WORKER_DRAIN_SECONDS must be 0..86400').max(86400, 'DOTGIT_WORKER_DRAIN_SECONDS must be 0..86400'),
  /** `DOTGIT_DRAIN_SECONDS` — after SIGTERM, how long a git-server or gateway lets requests in flight (pushes, clones, proxied streams) finish before it cuts them and exits; new requests meanwhile get 503. Default 30. */
  drainSeconds: z.coerce.number().int().min(0, 'DOTGIT_DRAIN_SECONDS must be 0..3600').max(3600, 'DOTGIT_DRAIN_SECONDS must be 0..3600'),
  /** `DOTGIT_QUEUE_METRICS_INTERVAL_SECONDS` — how often a worker reads the task queues' backlog from Temporal for `/metrics` (the autoscaling signal, ADR 0013); 0 = never. Default 5. */
  queueMetricsIntervalSeconds: z.coerce.number().min(0, 'DOTGIT_QUEUE_METRICS_INTERVAL_SECONDS must be 0..3600').max(3600, 'DOTGIT_QUEUE_METRICS_INTERVAL_SECONDS must be 0..3600'),
  /**
   * `DOTGIT_API_UPSTREAMS` — comma list of the api instances' base URLs the gateway balances over
   * (ADR 0014). Default the one api at `http://$DOTGIT_INTERNAL_HOST:$DOTGIT_API_PORT`.
   */
  apiUpstreams: z.array(z.url({ protocol: /^https?$/, error: 'DOTGIT_API_UPSTREAMS lists http(s) URLs' })).min(1, 'DOTGIT_API_UPSTREAMS names at least one URL'),
  /**
   * `DOTGIT_GIT_UPSTREAMS` — comma list of the git-server (storage node) base URLs: the gateway
   * balances git traffic over them and the api and workers call any of them; a node forwards a
   * repository's requests to the node that holds it (ADR 0014). Default the one git-server at
   * `http://$DOTGIT_INTERNAL_HOST:$DOTGIT_GIT_PORT`.
   */
  gitUpstreams: z.array(z.url({ protocol: /^https?$/, error: 'DOTGIT_GIT_UPSTREAMS lists http(s) URLs' })).min(1, 'DOTGIT_GIT_UPSTREAMS names at least one URL'),
  /** `DOTGIT_NODE_ID` — a git-server's storage node id (repositories are placed on nodes by id). Default: the host id (`DOTGIT_HOST_ID` or the one saved in the data dir). */
  nodeId: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'DOTGIT_NODE_ID must be 1-63 of A-Z a-z 0-9 . _ - starting with a letter or digit')
    .optional(),
  /** `DOTGIT_NODE_URL` — the base URL other parts reach this git-server (storage node) at. Default `http://$DOTGIT_INTERNAL_HOST:$DOTGIT_GIT_PORT`. */
  nodeUrl: z.url({ protocol: /^https?$/, error: 'DOTGIT_NODE_URL must be an http(s) URL' }),
  /** `DOTGIT_FLEET` — `npm start` runs the local fleet (as `npm start -- --fleet`): 2 gateways, 2 apis, 2 storage nodes, 3 sandbox hosts. Default off. */
  fleet: z.enum(['', '0', '1', 'true', 'false'], { error: 'DOTGIT_FLEET must be 1/true or 0/false' }).transform((v) => v === '1' || v === 'true'),
  /** `DOTGIT_OBSERVABILITY` — `npm start` also runs Prometheus (as `npm start -- --observability`). Default off. */
  observability: z.enum(['', '0', '1', 'true', 'false'], { error: 'DOTGIT_OBSERVABILITY must be 1/true or 0/false' }).transform((v) => v === '1' || v === 'true'),
  /** `DOTGIT_PROMETHEUS_PORT` — Prometheus's port with `--observability`. Default 9090. */
  prometheusPort: z.coerce.number().int().min(0).max(65535),
  /** `DOTGIT_HA` — `npm start` runs the high-availability mode (as `npm start -- --ha`): Postgres under Patroni + etcd, Redis under Sentinel. Default off. */
  ha: z.enum(['', '0', '1', 'true', 'false'], { error: 'DOTGIT_HA must be 1/true or 0/false' }).transform((v) => v === '1' || v === 'true'),
  /** `DOTGIT_PATRONI_URLS` — comma list of Patroni REST APIs (any member answers for the cluster): the planned switchover workflow asks them (ADR 0027). Default none; `--ha` sets its members'. */
  patroniUrls: z.array(z.url({ protocol: /^https?$/, error: 'DOTGIT_PATRONI_URLS lists http(s) URLs' })),
  /**
   * `DOTGIT_DB_REPLICA_MAX_LAG_SECONDS` — with a multi-host `DATABASE_URL`, read-heavy API paths may
   * go to its standbys; one further behind the primary than this is taken out of reads until it
   * catches up (ADR 0027). 0 sends every read to the primary. Default 5.
   */
  replicaMaxLagSeconds: z.coerce.number().min(0, 'DOTGIT_DB_REPLICA_MAX_LAG_SECONDS must be 0..3600').max(3600, 'DOTGIT_DB_REPLICA_MAX_LAG_SECONDS must be 0..3600'),
  /** `LOG_LEVEL` — pino level. Default `info`. */
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
});

export type Config = z.infer<typeof configSchema>;

/** Thrown at start-up when an environment variable does not fit the schema; names every bad variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** The S3 settings are read only with `DOTGIT_OBJECT_STORE=s3`, so stray AWS-ish variables cannot break an fs setup. */
function objectStoreEnv(env: NodeJS.ProcessEnv): unknown {
  const driver = env.DOTGIT_OBJECT_STORE || 'fs';
  if (driver !== 's3') return { driver, ...(env.DOTGIT_FS_OBJECTS_DIR ? { dir: path.resolve(env.DOTGIT_FS_OBJECTS_DIR) } : {}) };
  const endpoint = env.DOTGIT_S3_ENDPOINT || undefined;
  return {
    driver,
    bucket: env.DOTGIT_S3_BUCKET || undefined,
    endpoint,
    region: env.DOTGIT_S3_REGION || 'us-east-1',
    prefix: env.DOTGIT_S3_PREFIX ?? '',
    accessKeyId: env.DOTGIT_S3_ACCESS_KEY_ID || undefined,
    secretAccessKey: env.DOTGIT_S3_SECRET_ACCESS_KEY || undefined,
    // S3-compatible servers mostly need path-style addressing; AWS itself wants virtual-hosted.
    forcePathStyle: env.DOTGIT_S3_FORCE_PATH_STYLE || (endpoint ? 'true' : 'false'),
  };
}

/** A comma list of URLs (trailing slashes dropped); undefined when the variable is unset or empty. */
function urlList(value: string | undefined): string[] | undefined {
  const items = (value ?? '').split(',').map((u) => u.trim().replace(/\/+$/, '')).filter(Boolean);
  return items.length > 0 ? items : undefined;
}

function parseJsonEnv(name: string, value: string | undefined, fallback: unknown): unknown {
  if (!value) return fallback;
  try {
    return JSON.parse(value);
  } catch {
    throw new ConfigError(`invalid configuration: ${name} is not valid JSON`);
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const port = env.PORT ?? '8080';
  const internalHost = env.DOTGIT_INTERNAL_HOST ?? '127.0.0.1';
  const raw = {
    dataDir: path.resolve(env.DOTGIT_DATA_DIR ?? '.data'),
    port,
    host: env.DOTGIT_HOST ?? '127.0.0.1',
    internalHost,
    publicUrl: env.DOTGIT_PUBLIC_URL ?? `http://127.0.0.1:${port}`,
    apiPort: env.DOTGIT_API_PORT ?? '8081',
    gitPort: env.DOTGIT_GIT_PORT ?? '8082',
    workerPort: env.DOTGIT_WORKER_PORT ?? '8083',
    databaseUrl: env.DATABASE_URL || undefined,
    shardMap: parseJsonEnv('DOTGIT_SHARD_MAP', env.DOTGIT_SHARD_MAP, undefined),
    redisUrl: env.REDIS_URL || undefined,
    temporalAddress: env.TEMPORAL_ADDRESS || undefined,
    postgresPort: env.DOTGIT_POSTGRES_PORT ?? '15432',
    redisPort: env.DOTGIT_REDIS_PORT ?? '16379',
    temporalPort: env.TEMPORAL_PORT ?? '7233',
    temporalNamespace: env.TEMPORAL_NAMESPACE ?? DEFAULT_NAMESPACE,
    temporalUiPort: env.TEMPORAL_UI_PORT ?? '8233',
    temporalMetricsPort: env.TEMPORAL_METRICS_PORT ?? '8234',
    internalSecret: env.DOTGIT_INTERNAL_SECRET || undefined,
    secretsKey: env.DOTGIT_SECRETS_KEY || undefined,
    sandbox: env.DOTGIT_SANDBOX ?? 'auto',
    stepTimeoutSeconds: env.DOTGIT_STEP_TIMEOUT ?? '600',
    sandboxConcurrency: env.DOTGIT_SANDBOX_CONCURRENCY ?? '8',
    workspaceTmpfsMb: env.DOTGIT_WORKSPACE_TMPFS_MB ?? '2048',
    sourceCacheMb: env.DOTGIT_SOURCE_CACHE_MB ?? '1024',
    cacheRepoMaxMb: env.DOTGIT_CACHE_REPO_MAX_MB ?? '1024',
    maxPushBytes: env.DOTGIT_MAX_PUSH_BYTES ?? String(2 * 1024 ** 3),
    uploadPackConcurrency: env.DOTGIT_UPLOAD_PACK_CONCURRENCY ?? '8',
    uploadPackQueue: env.DOTGIT_UPLOAD_PACK_QUEUE ?? '64',
    packCache: env.DOTGIT_PACK_CACHE ?? 'on',
    packCacheTtlSeconds: env.DOTGIT_PACK_CACHE_TTL ?? '300',
    packCacheMaxBytes: env.DOTGIT_PACK_CACHE_MAX_BYTES ?? String(1024 ** 3),
    packCacheHandoff: env.DOTGIT_PACK_CACHE_HANDOFF ?? 'on',
    gitRedisTimeoutMs: env.DOTGIT_GIT_REDIS_TIMEOUT_MS ?? '250',
    pushReconcileSeconds: env.DOTGIT_PUSH_RECONCILE_INTERVAL ?? '30',
    jwtIssuer: env.DOTGIT_JWT_ISSUER ?? env.DOTGIT_PUBLIC_URL ?? `http://127.0.0.1:${port}`,
    jwtAudience: env.DOTGIT_JWT_AUDIENCE ?? 'dotgit',
    jwtTtlSeconds: env.DOTGIT_JWT_TTL ?? '600',
    externalIssuers: parseJsonEnv('DOTGIT_EXTERNAL_ISSUERS', env.DOTGIT_EXTERNAL_ISSUERS, []),
    routesFile: env.DOTGIT_ROUTES_FILE || undefined,
    tokenCacheTtlSeconds: env.DOTGIT_TOKEN_CACHE_TTL ?? '60',
    consoleSessionTtlSeconds: env.DOTGIT_CONSOLE_SESSION_TTL ?? '604800',
    temporalUiUrl: env.DOTGIT_TEMPORAL_UI_URL || undefined,
    objectStore: objectStoreEnv(env),
    rateLimits: parseJsonEnv('DOTGIT_RATE_LIMITS', env.DOTGIT_RATE_LIMITS, undefined),
    rateLimitFail: env.DOTGIT_RATE_LIMIT_FAIL ?? 'open',
    gatewayRedisTimeoutMs: env.DOTGIT_GATEWAY_REDIS_TIMEOUT_MS ?? '100',
    tlsCert: env.DOTGIT_TLS_CERT || undefined,
    tlsKey: env.DOTGIT_TLS_KEY || undefined,
    tlsPort: env.DOTGIT_TLS_PORT ?? '8443',
    tlsClientCa: env.DOTGIT_TLS_CLIENT_CA || undefined,
    tlsClientCert: env.DOTGIT_TLS_CLIENT_CERT ?? 'optional',
    webhookAllowHosts: env.DOTGIT_WEBHOOK_ALLOW_HOSTS ?? '',
    webhookTimeoutSeconds: env.DOTGIT_WEBHOOK_TIMEOUT ?? '10',
    alertWebhookUrl: env.DOTGIT_ALERT_WEBHOOK_URL || undefined,
    alertWebhookSecret: env.DOTGIT_ALERT_WEBHOOK_SECRET || undefined,
    backupRetentionDays: env.DOTGIT_BACKUP_RETENTION_DAYS ?? '7',
    backupFullEveryHours: env.DOTGIT_BACKUP_FULL_EVERY_HOURS ?? '24',
    outboxRetentionDays: env.DOTGIT_OUTBOX_RETENTION_DAYS ?? '7',
    deliveryLogRetentionDays: env.DOTGIT_DELIVERY_LOG_RETENTION_DAYS ?? '30',
    deliveryLogKeep: env.DOTGIT_DELIVERY_LOG_KEEP ?? '100',
    restoreCopyRetentionDays: env.DOTGIT_RESTORE_COPY_RETENTION_DAYS ?? '1',
    moveGraceSeconds: env.DOTGIT_MOVE_GRACE_SECONDS ?? '300',
    shardMoveGraceSeconds: env.DOTGIT_SHARD_MOVE_GRACE_SECONDS ?? '300',
    shardMoveBatchRows: env.DOTGIT_SHARD_MOVE_BATCH_ROWS ?? '1000',
    schemaClientRefreshSeconds: env.DOTGIT_SCHEMA_CLIENT_REFRESH_SECONDS ?? '30',
    schemaClientStaleSeconds: env.DOTGIT_SCHEMA_CLIENT_STALE_SECONDS ?? '120',
    pgToolsDir: env.DOTGIT_PG_TOOLS_DIR || undefined,
    replicaZones: parseReplicaZonesEnv(env.DOTGIT_REPLICA_ZONES, (text) => parseJsonEnv('DOTGIT_REPLICA_ZONES', text, [])),
    replicaNodes: env.DOTGIT_REPLICA_NODES ?? '0',
    workerRoles: (env.DOTGIT_WORKER_ROLES || 'orchestration,sandbox,storage').split(',').map((r) => r.trim()).filter(Boolean),
    hostId: env.DOTGIT_HOST_ID || undefined,
    workerDrainSeconds: env.DOTGIT_WORKER_DRAIN_SECONDS ?? '600',
    workflowBundleDir: env.DOTGIT_WORKFLOW_BUNDLE_DIR || undefined,
    drainSeconds: env.DOTGIT_DRAIN_SECONDS ?? '30',
    queueMetricsIntervalSeconds: env.DOTGIT_QUEUE_METRICS_INTERVAL_SECONDS ?? '5',
    apiUpstreams: urlList(env.DOTGIT_API_UPSTREAMS) ?? [`http://${internalHost}:${env.DOTGIT_API_PORT ?? '8081'}`],
    gitUpstreams: urlList(env.DOTGIT_GIT_UPSTREAMS) ?? [`http://${internalHost}:${env.DOTGIT_GIT_PORT ?? '8082'}`],
    nodeId: env.DOTGIT_NODE_ID || undefined,
    nodeUrl: env.DOTGIT_NODE_URL || `http://${internalHost}:${env.DOTGIT_GIT_PORT ?? '8082'}`,
    fleet: env.DOTGIT_FLEET ?? '',
    observability: env.DOTGIT_OBSERVABILITY ?? '',
    prometheusPort: env.DOTGIT_PROMETHEUS_PORT ?? '9090',
    ha: env.DOTGIT_HA ?? '',
    patroniUrls: urlList(env.DOTGIT_PATRONI_URLS) ?? [],
    replicaMaxLagSeconds: env.DOTGIT_DB_REPLICA_MAX_LAG_SECONDS ?? '5',
    logLevel: env.LOG_LEVEL ?? 'info',
  };
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ConfigError(`invalid configuration: ${problems}`);
  }
  return parsed.data;
}

/** Paths inside the data dir, in one place so no service invents its own layout. */
export function dataPaths(config: Pick<Config, 'dataDir'>) {
  const d = config.dataDir;
  return {
    repos: path.join(d, 'repos'),
    objects: path.join(d, 'objects'),
    workspaces: path.join(d, 'workspaces'),
    packCache: path.join(d, 'cache', 'packs'),
    sourceCache: path.join(d, 'cache', 'sources'),
    postgres: path.join(d, 'postgres'),
    redis: path.join(d, 'redis'),
    temporal: path.join(d, 'temporal'),
    sandbox: path.join(d, 'sandbox'),
    restores: path.join(d, 'restores'),
    adminToken: path.join(d, 'admin.token'),
    internalSecret: path.join(d, 'internal.secret'),
    hostId: path.join(d, 'host-id'),
  };
}
