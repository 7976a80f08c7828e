import { promises as fs } from 'node:fs';
import path from 'node:path';
import { startPlatform, ROOT } from '../../infra/platform';
import { freePort } from '../../infra/provision/free-port';
import { LIMITS_OUT_OF_THE_WAY, ownPlatformEnv } from '../../infra/own-platform-env';
import { PLATFORM_FILE, type PlatformInfo } from './platform-info';
import { startExtraShardDatabases } from '../helpers/shard-databases';

/**
 * Starts the whole platform once per test run, the way `npm start` does, on free ports and a fresh
 * data dir: real Temporal dev server, Postgres, Redis, git and sandbox.
 */
export default async function globalSetup(): Promise<void> {
  const dataDir = path.join(ROOT, '.test-data', `run-${process.pid}`);
  await fs.rm(dataDir, { recursive: true, force: true });
  // One replica zone (a storage root beside the data dir): every push of every suite replicates to
  // it, and test/e2e/replication.test.ts takes it away and back, diverges it, and fails over to it.
  const replicaRoot = path.join(dataDir, 'zones', 'b');
  await fs.mkdir(replicaRoot, { recursive: true });
  const quiet = { info: () => undefined, debug: () => undefined, warn: (m: string) => console.warn(m) };
  // Platform alerts (a failed restore drill) go to a receiver test/e2e/backup.test.ts runs on this port.
  const alertPort = await freePort();
  const started = Date.now();
  // Opt-in (issue 12): DOTGIT_TEST_SHARD_DATABASES=3 runs the suites with the 8 shards spread over 2
  // more embedded servers (DOTGIT_SHARD_MAP; the platform's own database keeps the global tables);
  // unset, one database as ever.
  const shardDatabases = Number(process.env.DOTGIT_TEST_SHARD_DATABASES ?? 1);
  const extra = shardDatabases > 1 ? await startExtraShardDatabases(shardDatabases) : undefined;
  (globalThis as { __dotgitShardDatabases?: unknown }).__dotgitShardDatabases = extra;
  const platform = await startPlatform({
    env: ownPlatformEnv(dataDir, {
      // Load tests (50 concurrent pushes, hundreds of clones) share one token; the limits
      // themselves are tested on gateways of their own (test/integration/gateway-rate-limit).
      // Webhook tests run their receivers on 127.0.0.1: exempt that literal host from the SSRF guard
      // (names that resolve to loopback, `[::1]` and every other private address stay refused).
      DOTGIT_WEBHOOK_ALLOW_HOSTS: '127.0.0.1',
      DOTGIT_ALERT_WEBHOOK_URL: `http://127.0.0.1:${alertPort}/alerts`,
      DOTGIT_ALERT_WEBHOOK_SECRET: 'test-alert-secret',
      DOTGIT_REPLICA_ZONES: JSON.stringify([{ name: 'b', root: replicaRoot }]),
      DOTGIT_RATE_LIMITS: LIMITS_OUT_OF_THE_WAY,
      // Steps whose env sets DOTGIT_TEST_STALL=1 pause between their command's end and its recording
      // (test/e2e/zz-pipeline-worker-kill.test.ts kills the worker there); other steps never do.
      DOTGIT_TEST_STALL_BEFORE_STEP_RECORD: path.join(dataDir, 'stalled-before-step-record'),
      ...(extra ? { DOTGIT_SHARD_MAP: JSON.stringify(extra.map) } : {}),
    }),
    log: quiet,
    ephemeral: true,
  });
  (globalThis as { __dotgitPlatform?: unknown }).__dotgitPlatform = platform;
  const info: PlatformInfo = {
    gatewayUrl: platform.gatewayUrl,
    temporalAddress: platform.temporalAddress,
    temporalMetricsUrl: platform.temporalMetricsUrl,
    temporalUiUrl: platform.temporalUiUrl,
    namespace: platform.namespace,
    databaseUrl: platform.databaseUrl,
    redisUrl: platform.redisUrl,
    dataDir: platform.dataDir,
    adminToken: platform.adminToken,
    consoleUrl: platform.consoleUrl,
    internalSecret: String(platform.serviceEnv.DOTGIT_INTERNAL_SECRET),
    gitPort: Number(platform.serviceEnv.DOTGIT_GIT_PORT),
    workerPort: Number(platform.serviceEnv.DOTGIT_WORKER_PORT),
    apiPort: Number(platform.serviceEnv.DOTGIT_API_PORT),
    alertPort,
    ...(extra ? { shardMap: extra.map } : {}),
    servicePids: Object.fromEntries([...platform.services].map(([name, s]) => [name, s.pid ?? 0])),
  };
  process.env.DOTGIT_TEST_PLATFORM_FILE = PLATFORM_FILE;
  await fs.mkdir(path.dirname(PLATFORM_FILE), { recursive: true });
  await fs.writeFile(PLATFORM_FILE, JSON.stringify(info, null, 2));
  const layout = extra ? ` (tenant shards on ${Object.keys(extra.map.databases).join(', ')})` : '';
  console.log(`\nplatform up in ${((Date.now() - started) / 1000).toFixed(1)} s at ${platform.gatewayUrl}${layout}`);
}
