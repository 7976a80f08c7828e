import http from 'node:http';
import path from 'node:path';
import { dataPaths, loadConfig } from '../core/config';
import { startTracing } from '../core/tracing';
import { createShardRouter } from '../core/shard-router';
import { databaseState } from '../core/db-replicas';
import { registerSchemaClientEverywhere } from '../core/shard-databases';
import { createLogger } from '../core/logger';
import { readInternalSecret } from '../core/secrets-file';
import { createGatewayApp } from './app';
import { clientErrorHandler } from './client-error';
import { RateLimiter, parseRateLimitConfig } from './rate-limit';
import { assertSentinelMaster, createRedis } from '../core/redis';
import { createHttpsServer } from './tls';
import { SigningKeys } from './jwt/signing-keys';
import { oidcIssuer } from '../core/id-tokens';
import { JwtVerifier } from './jwt/jwt-verifier';
import { issuerRouter } from './jwt/token-endpoint';
import { HttpDrain, stopOnSignals } from '../core/drain';
import { UpstreamPool } from '../core/upstream-pool';
import { upstreamReadiness } from './readiness';
import { pingDatabase } from '../core/stores/server-store';
import { PackFiles } from './pack-files';

async function main(): Promise<void> {
  const config = loadConfig();
  // Off unless OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set (ADR 0018).
  startTracing('gateway');
  const log = createLogger('gateway', config.logLevel);
  if (!config.databaseUrl) throw new Error('gateway needs DATABASE_URL (npm start sets it)');
  // The global database and every shard database of DOTGIT_SHARD_MAP (ADR 0025); a bad map stops start-up here.
  const router = await createShardRouter(config);
  const db = router.global;
  // The schema version this code was shipped with, so a contract migration waits for it (docs/migrations.md).
  const schemaClient = await registerSchemaClientEverywhere(router, 'gateway', { refreshSeconds: config.schemaClientRefreshSeconds, log });
  // A sentinel master name the sentinels do not know stops start-up here (ADR 0016).
  if (config.redisUrl) await assertSentinelMaster(config.redisUrl);
  // Concurrent requests' rate-limit calls share socket writes (the writes were the Redis client's largest cost in the profile).
  const redis = config.redisUrl ? createRedis(config.redisUrl, { autoPipelining: true }) : undefined;
  // Every api and git-server instance (ADR 0014, "Balancing"): requests go round robin to the
  // healthy ones; each is probed every 2 s and taken out while it cannot be reached.
  const api = new UpstreamPool('api', config.apiUpstreams, { log }).start();
  const git = new UpstreamPool('git-server', config.gitUpstreams, { log }).start();
  const worker = new URL(`http://${config.internalHost}:${config.workerPort}`);
  const healthOf = (base: URL) => async () => {
    const res = await fetch(new URL('/healthz', base), { signal: AbortSignal.timeout(2000) });
    if (!res.ok) throw new Error(`${base} unhealthy`);
  };
  const internalSecret = await readInternalSecret(config);
  const keys = new SigningKeys(db, internalSecret);
  await keys.rotateIfDue();
  setInterval(() => keys.rotateIfDue().catch((err) => log.warn({ err }, 'key rotation failed')), 3600_000).unref();
  const limiter = redis
    ? new RateLimiter({ redis, config: parseRateLimitConfig(config.rateLimits), failMode: config.rateLimitFail, timeoutMs: config.gatewayRedisTimeoutMs })
    : undefined;
  const app = createGatewayApp({
    db,
    log,
    internalSecret,
    jwt: new JwtVerifier({ keys, issuer: config.jwtIssuer, audience: config.jwtAudience, external: config.externalIssuers }),
    clientCert: config.tlsClientCa ? config.tlsClientCert : undefined,
    issuer: issuerRouter({ db, keys, issuer: config.jwtIssuer, audience: config.jwtAudience, ttlSeconds: config.jwtTtlSeconds, limiter, oidcIssuer: oidcIssuer(config.publicUrl) }),
    upstreams: { api, git },
    routesFile: config.routesFile,
    limiter,
    tokenCacheTtlMs: config.tokenCacheTtlSeconds * 1000,
    // The web console at `/` (ADR 0032), built into console/dist by npm start and npm test.
    console: { distDir: path.resolve(__dirname, '..', 'console', 'dist'), sessionTtlSeconds: config.consoleSessionTtlSeconds, temporalUiUrl: config.temporalUiUrl },
    // api and git-server are healthy while at least one of their instances is.
    healthChecks: { postgres: () => pingDatabase(db), api: () => api.check(), 'git-server': () => git.check(), worker: healthOf(worker) },
    // The primary and each standby's lag, when DATABASE_URL lists several hosts (ADR 0027).
    healthDetails: async () => {
      const database = await databaseState(db);
      return database ? { database } : {};
    },
    // /readyz (ADR 0028): each part's own readiness, so the answer names the dependency behind it.
    readyChecks: {
      postgres: () => pingDatabase(db),
      ...(redis ? { redis: () => redis.ping() } : {}),
      api: upstreamReadiness(config.apiUpstreams),
      'git-server': upstreamReadiness(config.gitUpstreams),
      worker: upstreamReadiness([worker]),
    },
    // Cached fetch answers streamed from the git-server's pack cache when this process reads it (ADR 0040).
    packFiles: config.packCacheHandoff === 'on' ? new PackFiles(dataPaths(config).packCache) : undefined,
  });
  // Header size over 16 KiB: Node answers 431 itself. Slow clients: 15 s to send the headers, and a
  // socket idle for 2 minutes is closed (long pushes keep sending, so they are not cut).
  // connectionsCheckingInterval: Node checks the header timeout only this often (default 30 s, which
  // would let a slow client hold a socket for up to 45 s).
  const maxHeaderSize = 16 * 1024;
  // On SIGTERM: listening stops (a balancer's new connections go elsewhere), requests in flight
  // (long clone and push streams too) finish, new ones on kept-alive sockets and /healthz get 503.
  const drain = new HttpDrain({ graceSeconds: config.drainSeconds, healthPath: '/healthz' });
  const server = drain.add(http.createServer({ maxHeaderSize, headersTimeout: 15_000, requestTimeout: 0, connectionsCheckingInterval: 1000 }, drain.handler(app)));
  server.timeout = 120_000;
  // Idle keep-alive sockets outlive the clients' own idle timeouts (undici 4 s, browsers ~60 s), so a
  // client never sends on a socket the gateway is closing at that moment ("other side closed").
  server.keepAliveTimeout = 65_000;
  server.on('upgrade', app.onUpgrade);
  // Requests Node's parser refuses (bad Content-Length, header bytes, oversized headers, header
  // timeout) are answered in the CONTRACT's error shape, not with a bare status line.
  const onClientError = clientErrorHandler(log, maxHeaderSize);
  server.on('clientError', onClientError);
  server.listen(config.port, config.host, () => log.info({ port: config.port }, 'gateway listening'));
  const secure =
    config.tlsCert && config.tlsKey
      ? drain.add(createHttpsServer({ certFile: config.tlsCert, keyFile: config.tlsKey, clientCaFile: config.tlsClientCa, clientCert: config.tlsClientCert }, drain.handler(app)))
      : undefined;
  secure?.on('upgrade', app.onUpgrade);
  secure?.on('clientError', onClientError);
  secure?.listen(config.tlsPort, config.host, () => log.info({ port: config.tlsPort, mtls: Boolean(config.tlsClientCa) }, 'gateway listening (TLS)'));
  stopOnSignals({
    name: 'gateway',
    log,
    drain,
    graceSeconds: config.drainSeconds,
    close: () => {
      api.stop();
      git.stop();
      return Promise.allSettled([schemaClient.stop().then(() => router.close()), redis?.quit()]);
    },
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
