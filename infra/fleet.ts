import path from 'node:path';

/** The service processes the runner starts (topology roles of its own processes). */
export type ServiceRole = 'gateway' | 'api' | 'git-server' | 'worker';

/** Entry point and listening-port variable of each service. */
export const SERVICE_ROLES: Record<ServiceRole, { entry: string; portVar: string }> = {
  'git-server': { entry: 'git-server/main.ts', portVar: 'DOTGIT_GIT_PORT' },
  api: { entry: 'api/main.ts', portVar: 'DOTGIT_API_PORT' },
  worker: { entry: 'worker/main.ts', portVar: 'DOTGIT_WORKER_PORT' },
  gateway: { entry: 'gateway/main.ts', portVar: 'PORT' },
};

/** One service process of the platform: what to run, where it listens, its environment. */
export interface ServiceInstance {
  /** Its key in `Platform.services`; names its log (`logs/<name>.log`) and pid file. */
  name: string;
  role: ServiceRole;
  /** Topology `instance`; unset for a worker, whose instance is the host id it resolves. */
  instance?: string;
  port: number;
  env: NodeJS.ProcessEnv;
}

/** `npm start`: one of each, all with the platform's environment and data dir. */
export function singleLayout(serviceEnv: NodeJS.ProcessEnv): ServiceInstance[] {
  return (Object.keys(SERVICE_ROLES) as ServiceRole[]).map((role) => ({
    name: role,
    role,
    ...(role === 'worker' ? {} : { instance: `${role}-1` }),
    port: Number(serviceEnv[SERVICE_ROLES[role].portVar]),
    env: serviceEnv,
  }));
}

/** `npm start`'s port of the `n`-th instance (1-based) of a role: the role's port + 10 × (n − 1), so the second gateway is on PORT+10. */
export const nthPort = (base: number, n: number): number => base + 10 * (n - 1);

/** How many of each the local fleet runs (CONTRACT "Extended surface", `--fleet`). */
export const FLEET = { gateways: 2, apis: 2, nodes: 2, sandboxHosts: 3 } as const;

export interface FleetOptions {
  /** The platform's environment: backing services, internal secret, public URL, single ports. */
  serviceEnv: NodeJS.ProcessEnv;
  /** The platform's data dir: Postgres, Redis, Temporal, logs and the shared object store live here. */
  dataDir: string;
  /** The fs object store every instance shares, as it would a bucket (`DOTGIT_FS_OBJECTS_DIR`). */
  objectsDir: string | undefined;
  internalHost: string;
  /** The port of the `n`-th instance (1-based) of a role, given the role's configured port (`npm start`: `nthPort`). */
  port(base: number, n: number): Promise<number>;
}

/**
 * `npm start -- --fleet`: 2 gateways, 2 apis, 2 git storage nodes, 3 sandbox hosts, an
 * orchestration worker and a storage worker beside each node, on one machine, sharing the
 * platform's Postgres, Redis and Temporal, each instance with a data dir of its own under
 * `<data>/fleet/<instance>` (ADR 0014). Storage node `node-1` keeps the platform's data dir, so the
 * repositories of a single-instance `npm start` stay served. A storage worker works on its node's
 * disk (queue `dotgit-storage@<node>`): node-1's is the orchestration worker (orchestration needs
 * storage), node-2's is `storage-2`. Backups and replica reconciliation still walk only the
 * orchestration worker's disk, node-1's.
 */
export async function fleetLayout(o: FleetOptions): Promise<ServiceInstance[]> {
  const base = (v: string) => Number(o.serviceEnv[v]);
  // The first instance of each role takes the role's own port: reserved before any other is picked.
  const reserved = new Set<number>(Object.values(SERVICE_ROLES).map((r) => base(r.portVar)));
  const taken = new Set<number>();
  const ports = async (role: ServiceRole, count: number) => {
    const list: number[] = [];
    for (let n = 1; n <= count; n++) {
      let p = await o.port(base(SERVICE_ROLES[role].portVar), n);
      if (n === 1 && taken.has(p)) throw new Error(`the fleet would use port ${p} twice: give PORT, DOTGIT_API_PORT, DOTGIT_GIT_PORT and DOTGIT_WORKER_PORT room for instances 10 apart`);
      // Free-picked ports (tests) are random: never hand one out twice, nor a role's own port (not
      // yet bound when the others are picked). Configured ones that meet are the user's to change.
      for (let tries = 0; n > 1 && (taken.has(p) || reserved.has(p)); tries++) {
        if (tries === 10) throw new Error(`the fleet would use port ${p} twice: give PORT, DOTGIT_API_PORT, DOTGIT_GIT_PORT and DOTGIT_WORKER_PORT room for instances 10 apart`);
        p = await o.port(base(SERVICE_ROLES[role].portVar), n);
      }
      taken.add(p);
      list.push(p);
    }
    return list;
  };
  const url = (port: number) => `http://${o.internalHost}:${port}`;
  const gateways = await ports('gateway', FLEET.gateways);
  const apis = await ports('api', FLEET.apis);
  const nodes = await ports('git-server', FLEET.nodes);
  // The orchestration worker takes the role's own port; the sandbox hosts and node-2's storage worker the next ones.
  const [orchestrationPort, ...workerPorts] = await ports('worker', 1 + FLEET.sandboxHosts + (FLEET.nodes - 1));
  const sandboxPorts = workerPorts.slice(0, FLEET.sandboxHosts);
  const storagePorts = workerPorts.slice(FLEET.sandboxHosts);
  const ownDir = (instance: string) => path.join(o.dataDir, 'fleet', instance);
  const nodeDir = (n: number) => (n === 1 ? o.dataDir : ownDir(`node-${n}`));

  const shared: NodeJS.ProcessEnv = {
    ...o.serviceEnv,
    ...(o.objectsDir ? { DOTGIT_FS_OBJECTS_DIR: o.objectsDir } : {}),
    DOTGIT_API_UPSTREAMS: apis.map(url).join(','),
    DOTGIT_GIT_UPSTREAMS: nodes.map(url).join(','),
    // Every new repository gets a replica on the other node, so its clones survive its node's loss.
    DOTGIT_REPLICA_NODES: o.serviceEnv.DOTGIT_REPLICA_NODES ?? String(FLEET.nodes - 1),
    // What a part that knows one api or git-server calls: the first of each.
    DOTGIT_API_PORT: String(apis[0]),
    DOTGIT_GIT_PORT: String(nodes[0]),
  };
  const instance = (role: ServiceRole, name: string, port: number, env: NodeJS.ProcessEnv): ServiceInstance => ({
    name,
    role,
    ...(role === 'worker' ? {} : { instance: name }),
    port,
    env: { ...shared, ...env, [SERVICE_ROLES[role].portVar]: String(port) },
  });
  return [
    ...gateways.map((p, i) => instance('gateway', `gateway-${i + 1}`, p, { DOTGIT_DATA_DIR: ownDir(`gateway-${i + 1}`) })),
    ...apis.map((p, i) => instance('api', `api-${i + 1}`, p, { DOTGIT_DATA_DIR: ownDir(`api-${i + 1}`) })),
    ...nodes.map((p, i) =>
      instance('git-server', `node-${i + 1}`, p, {
        DOTGIT_NODE_ID: `node-${i + 1}`,
        DOTGIT_NODE_URL: url(p),
        DOTGIT_DATA_DIR: nodeDir(i + 1),
      }),
    ),
    instance('worker', 'orchestration-1', orchestrationPort, {
      DOTGIT_WORKER_ROLES: 'orchestration,storage',
      DOTGIT_HOST_ID: 'orchestration-1',
      DOTGIT_NODE_ID: 'node-1',
      DOTGIT_DATA_DIR: nodeDir(1),
    }),
    ...sandboxPorts.map((p, i) =>
      instance('worker', `sandbox-${i + 1}`, p, {
        DOTGIT_WORKER_ROLES: 'sandbox',
        DOTGIT_HOST_ID: `sandbox-${i + 1}`,
        DOTGIT_DATA_DIR: ownDir(`sandbox-${i + 1}`),
      }),
    ),
    ...storagePorts.map((p, i) =>
      instance('worker', `storage-${i + 2}`, p, {
        DOTGIT_WORKER_ROLES: 'storage',
        DOTGIT_HOST_ID: `storage-${i + 2}`,
        DOTGIT_NODE_ID: `node-${i + 2}`,
        DOTGIT_DATA_DIR: nodeDir(i + 2),
      }),
    ),
  ];
}
