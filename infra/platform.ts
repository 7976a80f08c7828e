import { promises as fs } from 'node:fs';
import path from 'node:path';
import { loadConfig, dataPaths } from '../core/config';
import { createShardRouter } from '../core/shard-router';
import { describeApplied, migrateAllDatabases } from '../core/shard-databases';
import { resolveShardMap } from '../core/shard-map';
import { assertSentinelMaster } from '../core/redis';
import { readInternalSecret } from '../core/secrets-file';
import { bootstrapAdmin } from './bootstrap-admin';
import { createSigninCode, signinLink } from '../core/console-link';
import { ServiceSupervisor } from './service-supervisor';
import { resolvePort } from './provision/free-port';
import type { ProvisionLog } from './provision/log';
import { startEmbeddedPostgres } from './provision/postgres';
import { startHaPostgres, type HaPostgresHandle } from './provision/patroni';
import { startRedis } from './provision/redis';
import { startRedisSentinels, type RedisSentinelHandle } from './provision/redis-sentinel';
import { ensureSandbox } from './provision/sandbox';
import { RunscDriver } from '../activities/sandbox/runsc-driver';
import { ensureGitLfs } from './provision/git-lfs';
import { ensurePgTools } from './provision/pg-tools';
import { prepareWalArchiving } from './provision/wal-archiving';
import { ensureTemporalCli, startTemporalDevServer } from './provision/temporal';
import { startPrometheus, type ScrapeTarget } from './provision/prometheus';
import { ROOT } from './root';
import { TopologyFile, type TopologyProcess } from './topology';
import { resolveHostId } from '../core/host-id';
import { DEV_SERVER_DYNAMIC_CONFIG } from '../temporal-config/dev-server';
import { fsObjectsDir } from '../core/object-store-factory';
import { fleetLayout, nthPort, SERVICE_ROLES, singleLayout, type ServiceInstance } from './fleet';
import { BUILD_DIR, compiledEntry, ensureBuilt } from './compiled';
import { serviceMemoryEnv } from './service-memory';

export { ROOT };

export interface PlatformOptions {
  /** Environment the configuration is read from (DESIGN §5: unset URLs mean embedded defaults). */
  env: NodeJS.ProcessEnv;
  log: ProvisionLog;
  /** Tests: every port free-picked, Postgres without fsync. Default false. */
  ephemeral?: boolean;
  /** The local fleet (`npm start -- --fleet`, infra/fleet.ts) instead of one of each. Default false. */
  fleet?: boolean;
  /** `npm start -- --observability`: Prometheus scraping every process (infra/provision/prometheus.ts). Default false. */
  observability?: boolean;
  /**
   * High availability (`npm start -- --ha`, CONTRACT "Extended surface"): Redis under Sentinel (1
   * master, 2 replicas, 3 sentinels; ADR 0016) unless REDIS_URL is set, and Postgres under Patroni
   * + etcd (1 primary, 1 synchronous standby, 2 async replicas; ADR 0021) unless DATABASE_URL is
   * set. Default false.
   */
  ha?: boolean;
  /**
   * Benchmarks only: the services from TypeScript through tsx, the worker bundling workflows at
   * start (as before ADR 0029), to measure what the build saves. Default false (compiled).
   */
  fromSource?: boolean;
}

export interface Platform {
  gatewayUrl: string;
  /** Every gateway's URL (one, or the fleet's), the first being `gatewayUrl`. */
  gatewayUrls: string[];
  temporalUiUrl: string | undefined;
  /** The embedded Temporal server's Prometheus endpoint (`TEMPORAL_METRICS_PORT`); undefined for an external Temporal. */
  temporalMetricsUrl: string | undefined;
  /** With `observability`: Prometheus (`DOTGIT_PROMETHEUS_PORT`, default 9090). */
  prometheusUrl: string | undefined;
  temporalAddress: string;
  namespace: string;
  databaseUrl: string;
  redisUrl: string;
  dataDir: string;
  adminToken: string;
  /** A one-time web console sign-in link for the admin (ADR 0032): the code is in the fragment, used once. */
  consoleUrl: string;
  /** Environment the service processes run with. */
  serviceEnv: NodeJS.ProcessEnv;
  /** The supervised service processes by name (gateway, api, git-server, worker; in a fleet, by instance: gateway-2, node-1, sandbox-3). */
  services: Map<string, ServiceSupervisor>;
  /** What each service process is: role, instance, port, environment (its data dir). */
  instances: ServiceInstance[];
  /**
   * The backing services this platform started itself (not those given by URL), for fault drills:
   * each can be stopped and started again on the same port over the same data.
   */
  backing: Partial<Record<BackingName, BackingService>>;
  /** With `ha`: the Sentinel set behind `redisUrl` (its processes, for failover drills). */
  redisSentinels?: RedisSentinelHandle;
  /** With `ha`: the Patroni cluster and etcd behind `databaseUrl` (for failover drills and switchovers). */
  haPostgres?: HaPostgresHandle;
  /** Stops the services, then Temporal, Redis and Postgres (in that order). Idempotent. */
  stop(): Promise<void>;
}

export type BackingName = 'postgres' | 'redis' | 'temporal' | 'prometheus';

/** One embedded backing service that can be taken away and brought back in place. */
export interface BackingService {
  /** The running process, or undefined while stopped. */
  readonly pid: number | undefined;
  /** Orderly stop (what each server does on SIGTERM/SIGINT); resolves once the process is gone. */
  stop(): Promise<void>;
  /** Starts it again on the same port over the same data; resolves once it answers. No-op when running. */
  start(): Promise<void>;
}

interface Instance {
  pid: number;
  stop(): Promise<void>;
}

/** Keeps whichever instance runs now, so `stop()` of the platform ends the current one. */
class Restartable implements BackingService {
  private current: Instance | undefined;
  private transition: Promise<void> = Promise.resolve();

  constructor(
    first: Instance,
    private readonly startAgain: () => Promise<Instance>,
    /** Called after each stop and start (its pid changed). */
    private readonly onChange: () => void,
  ) {
    this.current = first;
  }

  get pid(): number | undefined {
    return this.current?.pid;
  }

  // One transition at a time: a drill's start never races the platform's final stop.
  stop(): Promise<void> {
    return (this.transition = this.transition.then(async () => {
      const running = this.current;
      this.current = undefined;
      await running?.stop();
      if (running) this.onChange();
    }));
  }

  start(): Promise<void> {
    return (this.transition = this.transition.then(async () => {
      if (this.current) return;
      this.current = await this.startAgain();
      this.onChange();
    }));
  }
}

const portOf = (url: string) => Number(new URL(url.includes('://') ? url : `tcp://${url}`).port);

/**
 * Provisions what is missing (Temporal CLI, Postgres, Redis, sandbox), migrates, makes the admin on
 * first start, and runs gateway, api, git-server and worker as child processes. Used by `npm start`
 * and by the test harness, so tests run the platform the way users do.
 */
export async function startPlatform(o: PlatformOptions): Promise<Platform> {
  const config = loadConfig(o.env);
  const paths = dataPaths(config);
  const eph = o.ephemeral ?? false;
  const stops: Array<() => Promise<unknown>> = [];
  const stopAll = async () => {
    while (stops.length) await stops.pop()!().catch((err) => o.log.warn(`stop failed: ${(err as Error).message}`));
  };
  try {
    await fs.mkdir(config.dataDir, { recursive: true });
    const logsDir = path.join(config.dataDir, 'logs');
    const toolsDir = path.join(ROOT, '.tools');

    // The services run compiled (ADR 0029): what changed since the last build is compiled first.
    if (!o.fromSource) await ensureBuilt(o.log);
    const sandbox = config.sandbox === 'none' ? undefined : ensureSandbox({ toolsDir, log: o.log });
    // pg_basebackup of the embedded server's version, for backups (best effort: without it backups skip Postgres).
    const pgTools = config.databaseUrl || config.pgToolsDir ? undefined : ensurePgTools({ toolsDir, log: o.log }).catch((err) => o.log.warn(`backups: ${(err as Error).message}`));
    // Best effort: the server speaks LFS itself; the client is for tests and pipeline checkouts.
    const gitLfs = ensureGitLfs(o.log).catch((err) => o.log.warn(`git-lfs: ${(err as Error).message}`));
    const backing: Partial<Record<BackingName, BackingService>> = {};
    const backingPorts: Partial<Record<BackingName, { port: number; url?: string; metricsUrl?: string }>> = {};
    const services = new Map<string, ServiceSupervisor>();
    const internalHost = config.internalHost;
    const gatewayHost = config.host === '0.0.0.0' ? '127.0.0.1' : config.host;
    // What topology.json lists: each service and backing service running now. A worker's instance
    // is the host id its steps report, resolved as the worker itself does (its DOTGIT_HOST_ID, else
    // the data dir's host-id file).
    let instances: ServiceInstance[] = [];
    let redisSentinels: RedisSentinelHandle | undefined;
    let haPostgres: HaPostgresHandle | undefined;
    const processes = async () => {
      const list: TopologyProcess[] = [];
      for (const s of instances) {
        const supervisor = services.get(s.name);
        if (!supervisor?.pid) continue;
        const env = supervisor.env;
        const instance = s.instance ?? (await resolveHostId(env.DOTGIT_HOST_ID || undefined, dataPaths(loadConfig(env)).hostId));
        list.push({ role: s.role, instance, pid: supervisor.pid, port: s.port, url: `http://${s.role === 'gateway' ? gatewayHost : internalHost}:${s.port}` });
      }
      for (const [name, b] of Object.entries(backing) as Array<[BackingName, BackingService]>) {
        const { port, url, metricsUrl } = backingPorts[name]!;
        if (b.pid) list.push({ role: name, instance: `${name}-1`, pid: b.pid, port, ...(url ? { url } : {}), ...(metricsUrl ? { metricsUrl } : {}) });
      }
      for (const p of redisSentinels?.processes ?? []) if (p.pid) list.push({ role: p.role, instance: p.instance, pid: p.pid, port: p.port });
      // --ha: etcd members, Patroni members (url: the REST API, GET <url>/primary is 200 on the leader) and their postmasters.
      for (const m of haPostgres?.etcd.members ?? []) if (m.pid) list.push({ role: 'etcd', instance: m.name, pid: m.pid, port: m.ports.client, url: m.clientUrl });
      for (const m of haPostgres?.members ?? []) {
        if (m.pid) list.push({ role: 'patroni', instance: m.name, pid: m.pid, port: m.restPort, url: m.restUrl });
        const postmaster = m.postmasterPid();
        if (postmaster) list.push({ role: 'postgres', instance: m.name, pid: postmaster, port: m.postgresPort });
      }
      return list;
    };
    const topology = new TopologyFile(path.join(config.dataDir, 'run', 'topology.json'), processes, (m) => o.log.warn(m));
    // First in, last out: removed once everything it lists has stopped.
    stops.push(() => topology.remove());
    const rewrite = () => void topology.write();
    // Started on a free port the first time; a restart takes that same port, so clients reconnect.
    const keep = (name: BackingName, first: Instance, again: () => Promise<Instance>, port: number, url?: string, metricsUrl?: string) => {
      const b = new Restartable(first, again, rewrite);
      backing[name] = b;
      backingPorts[name] = { port, url, metricsUrl };
      stops.push(() => b.stop());
    };
    const postgresOptions = (port: number) => ({
      dataDir: paths.postgres,
      port,
      log: o.log,
      ephemeral: eph,
      archiveCommand: prepareWalArchiving({ dataDir: config.dataDir, objectsDir: fsObjectsDir(config, paths) ?? paths.objects, pgDataDir: paths.postgres }),
    });
    if (o.ha && !config.databaseUrl) {
      const archive = (pgDataDir: string) => prepareWalArchiving({ dataDir: config.dataDir, objectsDir: fsObjectsDir(config, paths) ?? paths.objects, pgDataDir });
      const cluster = await startHaPostgres({ dataDir: path.join(config.dataDir, 'postgres-ha'), toolsDir, log: o.log, ephemeral: eph, archiveCommand: archive });
      haPostgres = cluster;
      stops.push(() => cluster.stop());
    }
    const postgres = config.databaseUrl || haPostgres ? undefined : await startEmbeddedPostgres(postgresOptions(eph ? 0 : config.postgresPort));
    if (postgres) keep('postgres', postgres, () => startEmbeddedPostgres(postgresOptions(postgres.port)), postgres.port);
    // A REDIS_URL naming a sentinel master the sentinels do not know stops here, before anything starts.
    if (config.redisUrl) await assertSentinelMaster(config.redisUrl);
    if (o.ha && !config.redisUrl) {
      const set = await startRedisSentinels({ dataDir: path.join(config.dataDir, 'redis-ha'), port: eph ? 0 : config.redisPort, log: o.log, onChange: rewrite });
      redisSentinels = set;
      stops.push(() => set.stop());
    }
    const redis = config.redisUrl || redisSentinels ? undefined : await startRedis({ dataDir: paths.redis, port: eph ? 0 : config.redisPort, log: o.log });
    if (redis) keep('redis', redis, () => startRedis({ dataDir: paths.redis, port: portOf(redis.redisUrl), log: o.log }), portOf(redis.redisUrl), redis.redisUrl);
    let temporalAddress = config.temporalAddress;
    let temporalUiUrl: string | undefined;
    let temporalMetricsUrl: string | undefined;
    if (!temporalAddress) {
      const cli = await ensureTemporalCli({ toolsDir, log: o.log });
      const temporalOptions = (port: number, uiPort: number, metricsPort: number) => ({
        cliPath: cli.cliPath,
        dataDir: paths.temporal,
        port,
        uiPort,
        metricsPort,
        namespace: config.temporalNamespace,
        dynamicConfig: DEV_SERVER_DYNAMIC_CONFIG,
        log: o.log,
      });
      const temporal = await startTemporalDevServer(temporalOptions(eph ? 0 : config.temporalPort, eph ? 0 : config.temporalUiPort, eph ? 0 : config.temporalMetricsPort));
      const again = () => startTemporalDevServer(temporalOptions(portOf(temporal.address), portOf(temporal.uiUrl), portOf(temporal.metricsUrl)));
      keep('temporal', temporal, again, portOf(temporal.address), temporal.uiUrl, temporal.metricsUrl);
      temporalAddress = temporal.address;
      // The Web UI opened on our namespace, where the runs are (its root shows `default`, empty).
      temporalUiUrl = `${temporal.uiUrl}/namespaces/${encodeURIComponent(config.temporalNamespace)}/workflows`;
      temporalMetricsUrl = temporal.metricsUrl;
    }
    await sandbox;
    await gitLfs;
    const pgToolsDir = config.pgToolsDir ?? (await pgTools)?.binDir;

    const databaseUrl = config.databaseUrl ?? haPostgres?.databaseUrl ?? postgres!.databaseUrl;
    const redisUrl = config.redisUrl ?? redisSentinels?.redisUrl ?? redis!.redisUrl;
    // The global database and every shard database of DOTGIT_SHARD_MAP (ADR 0025); a bad map stops here.
    const router = await createShardRouter({ databaseUrl, shardMap: config.shardMap }, { max: 2 });
    let adminToken: string;
    let consoleCode: string;
    try {
      // Every database is migrated. A contract migration refuses while a process of an older release is still registered (docs/migrations.md).
      describeApplied(await migrateAllDatabases(router, resolveShardMap(config.shardMap, databaseUrl), undefined, { staleSeconds: config.schemaClientStaleSeconds }), o.log);
      adminToken = (await bootstrapAdmin(router, paths.adminToken)).token;
      consoleCode = await createSigninCode(router.global, adminToken);
    } finally {
      await router.close();
    }

    const port = eph ? await resolvePort(0) : config.port;
    const serviceEnv: NodeJS.ProcessEnv = {
      ...o.env,
      DOTGIT_DATA_DIR: config.dataDir,
      DATABASE_URL: databaseUrl,
      REDIS_URL: redisUrl,
      TEMPORAL_ADDRESS: temporalAddress,
      TEMPORAL_NAMESPACE: config.temporalNamespace,
      // The console links a run to its workflow in the Web UI (ADR 0032).
      ...(temporalUiUrl && !o.env.DOTGIT_TEMPORAL_UI_URL ? { DOTGIT_TEMPORAL_UI_URL: temporalUiUrl } : {}),
      DOTGIT_INTERNAL_SECRET: await readInternalSecret(config),
      PORT: String(port),
      DOTGIT_PUBLIC_URL: o.env.DOTGIT_PUBLIC_URL ?? `http://127.0.0.1:${port}`,
      DOTGIT_API_PORT: String(eph ? await resolvePort(0) : config.apiPort),
      DOTGIT_GIT_PORT: String(eph ? await resolvePort(0) : config.gitPort),
      DOTGIT_WORKER_PORT: String(eph ? await resolvePort(0) : config.workerPort),
      // The git-server's and gateway's drain after SIGTERM stays well inside the supervisor's 10 s
      // before SIGKILL, so Ctrl-C stops quickly even with a clone in flight.
      DOTGIT_DRAIN_SECONDS: o.env.DOTGIT_DRAIN_SECONDS ?? '5',
      ...(pgToolsDir ? { DOTGIT_PG_TOOLS_DIR: pgToolsDir } : {}),
      // --ha: the switchover workflow asks Patroni (ADR 0027).
      ...(haPostgres ? { DOTGIT_PATRONI_URLS: haPostgres.members.map((m) => m.restUrl).join(',') } : {}),
      // The worker loads the prebuilt workflow bundle instead of bundling at start.
      ...(o.fromSource ? {} : { DOTGIT_WORKFLOW_BUNDLE_DIR: BUILD_DIR }),
      // A small V8 young generation and few malloc arenas: ~100 MiB less at idle over the four (ADR 0029).
      ...serviceMemoryEnv(o.env),
    };
    instances = o.fleet
      ? await fleetLayout({
          serviceEnv,
          dataDir: config.dataDir,
          objectsDir: fsObjectsDir(config, paths),
          internalHost,
          // The first of each takes the port chosen above (free-picked in tests), so the public URL is gateway-1's.
          port: (base, n) => (n === 1 ? Promise.resolve(base) : eph ? resolvePort(0) : Promise.resolve(nthPort(base, n))),
        })
      : singleLayout(serviceEnv);
    // After the services have stopped (stops run last-in first-out): runsc leaves its pinned network
    // namespace mounted under each sandbox worker's state dir, which would make the data dir (or the
    // whole checkout) impossible to delete until unmounted by hand.
    stops.push(() => Promise.all([...new Set(instances.map((s) => String(s.env.DOTGIT_DATA_DIR)))].map((dir) => RunscDriver.releaseState(path.join(dir, 'sandbox')))));
    stops.push(() => Promise.all([...services.values()].map((s) => s.stop())));
    // Started in parallel: each only needs Postgres/Redis/Temporal, which are up.
    await Promise.all(
      instances.map(async (s) => {
        // A fleet instance's own data dir exists from the start, so users see where each keeps its state.
        await fs.mkdir(String(s.env.DOTGIT_DATA_DIR), { recursive: true });
        const supervisor = new ServiceSupervisor(
          {
            name: s.name,
            command: process.execPath,
            args: o.fromSource ? ['--import', 'tsx', path.join(ROOT, SERVICE_ROLES[s.role].entry)] : [compiledEntry(SERVICE_ROLES[s.role].entry)],
            logFile: path.join(logsDir, `${s.name}.log`),
            pidFile: path.join(config.dataDir, 'run', `${s.name}.pid`),
            log: o.log,
            // Its role's young generation (the gateway's is larger, ADR 0041); a user's own size wins.
            env: { ...s.env, ...serviceMemoryEnv(o.env, s.role) },
            probe: () => probeHealth(`http://${s.role === 'gateway' ? gatewayHost : internalHost}:${s.port}/healthz`, s.role !== 'gateway'),
            readyTimeoutMs: 90_000,
            stopGraceMs: 10_000,
          },
          o.log,
        );
        services.set(s.name, supervisor);
        supervisor.onStarted = rewrite;
        await supervisor.start();
      }),
    );
    // The gateway's own /healthz checks every part; ready means all of them answer.
    const gatewayUrls = instances.filter((s) => s.role === 'gateway').map((s) => `http://${gatewayHost}:${s.port}`);
    const gatewayUrl = gatewayUrls[0]!;
    await Promise.all(gatewayUrls.map((u) => waitFor(() => probeHealth(`${u}/healthz`, true), 60_000, `gateway ${u} /healthz`)));
    let prometheusUrl: string | undefined;
    if (o.observability) {
      // Every service process and the Temporal server, with the alert rules (infra/observability/).
      const targets: ScrapeTarget[] = instances.map((s) => ({ job: s.role, instance: s.name, url: `http://${s.role === 'gateway' ? gatewayHost : internalHost}:${s.port}/metrics` }));
      if (temporalMetricsUrl) targets.push({ job: 'temporal', instance: 'temporal-1', url: temporalMetricsUrl });
      const promOptions = (port: number) => ({ dataDir: path.join(config.dataDir, 'prometheus'), port, targets, ruleFiles: [path.join(ROOT, 'infra', 'observability', 'alerts.yml')], log: o.log });
      const prom = await startPrometheus(promOptions(eph ? 0 : config.prometheusPort));
      keep('prometheus', prom, () => startPrometheus(promOptions(prom.port)), prom.port, prom.url);
      prometheusUrl = prom.url;
    }
    await topology.write();

    let stopped: Promise<void> | undefined;
    return {
      gatewayUrl,
      gatewayUrls,
      temporalUiUrl,
      temporalMetricsUrl,
      prometheusUrl,
      temporalAddress,
      namespace: config.temporalNamespace,
      databaseUrl,
      redisUrl,
      redisSentinels,
      haPostgres,
      dataDir: config.dataDir,
      adminToken,
      consoleUrl: signinLink(gatewayUrl, consoleCode),
      serviceEnv,
      services,
      instances,
      backing,
      stop: () => (stopped ??= stopAll()),
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

async function probeHealth(url: string, requireOk: boolean): Promise<void> {
  const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
  if (requireOk && !res.ok) throw new Error(`${url} answered ${res.status}: ${await res.text()}`);
}

async function waitFor(probe: () => Promise<void>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      return await probe();
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw new Error(`${what} not ready after ${timeoutMs} ms: ${(last as Error)?.message}`);
}
