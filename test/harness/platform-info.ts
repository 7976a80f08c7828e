import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ShardMapConfig } from '../../core/shard-map';

/**
 * Where global setup leaves the addresses of the platform it started, for the test files. One
 * file per jest run (global setup puts its name in the environment, which the test files inherit),
 * so two runs at once never read each other's platform.
 */
export const PLATFORM_FILE = process.env.DOTGIT_TEST_PLATFORM_FILE ?? path.resolve(__dirname, '..', '..', '.test-data', `platform-${process.pid}.json`);

export interface PlatformInfo {
  gatewayUrl: string;
  temporalAddress: string;
  /** The Temporal dev server's Prometheus endpoint. */
  temporalMetricsUrl?: string;
  /** The Temporal Web UI link the start banner prints (namespace's workflow list); undefined with an external Temporal. */
  temporalUiUrl?: string;
  namespace: string;
  databaseUrl: string;
  redisUrl: string;
  dataDir: string;
  adminToken: string;
  /** The one-time web console sign-in link npm start would print (test/e2e/console.test.ts uses it). */
  consoleUrl: string;
  internalSecret: string;
  gitPort: number;
  /** The worker's health/metrics port. */
  workerPort: number;
  apiPort: number;
  /** Where the platform POSTs alerts (DOTGIT_ALERT_WEBHOOK_URL, secret `test-alert-secret`). */
  alertPort: number;
  /**
   * DOTGIT_SHARD_MAP when global setup spread the shards over more databases
   * (DOTGIT_TEST_SHARD_DATABASES); absent: every shard on `databaseUrl`. test/helpers/shard-databases.ts
   * finds a tenant's database from it.
   */
  shardMap?: ShardMapConfig;
  /** Pids of the service processes at start (gateway, api, git-server, worker). */
  servicePids: Record<string, number>;
}

export function platformInfo(): PlatformInfo {
  return JSON.parse(readFileSync(PLATFORM_FILE, 'utf8')) as PlatformInfo;
}
