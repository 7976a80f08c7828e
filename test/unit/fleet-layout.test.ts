import { fleetLayout, nthPort, singleLayout } from '../../infra/fleet';

// The local fleet's process layout (npm start -- --fleet): who listens where, with which data dir
// and which of the fleet's variables. The processes themselves run in test/e2e/fleet.test.ts.

const serviceEnv = { PORT: '8080', DOTGIT_API_PORT: '8081', DOTGIT_GIT_PORT: '8082', DOTGIT_WORKER_PORT: '8083', DOTGIT_INTERNAL_SECRET: 's'.repeat(32) };
const layout = () => fleetLayout({ serviceEnv, dataDir: '/d', objectsDir: '/d/objects', internalHost: '127.0.0.1', port: async (base, n) => nthPort(base, n) });

test("npm start's fleet: every role's n-th instance on its port + 10(n-1), own data dirs, each storage worker on its node's", async () => {
  const rows = (await layout()).map((i) => [i.name, i.role, i.port, i.env.DOTGIT_DATA_DIR]);
  expect(rows).toEqual([
    ['gateway-1', 'gateway', 8080, '/d/fleet/gateway-1'],
    ['gateway-2', 'gateway', 8090, '/d/fleet/gateway-2'],
    ['api-1', 'api', 8081, '/d/fleet/api-1'],
    ['api-2', 'api', 8091, '/d/fleet/api-2'],
    ['node-1', 'git-server', 8082, '/d'],
    ['node-2', 'git-server', 8092, '/d/fleet/node-2'],
    ['orchestration-1', 'worker', 8083, '/d'],
    ['sandbox-1', 'worker', 8093, '/d/fleet/sandbox-1'],
    ['sandbox-2', 'worker', 8103, '/d/fleet/sandbox-2'],
    ['sandbox-3', 'worker', 8113, '/d/fleet/sandbox-3'],
    ['storage-2', 'worker', 8123, '/d/fleet/node-2'],
  ]);
});

test('each instance listens on its own port and knows the fleet: upstream lists, node ids and URLs, worker roles and host ids, one object store', async () => {
  const by = new Map((await layout()).map((i) => [i.name, i]));
  const env = (name: string) => by.get(name)!.env;
  expect(env('gateway-2').PORT).toBe('8090');
  expect(env('api-2').DOTGIT_API_PORT).toBe('8091');
  expect(env('node-2')).toMatchObject({ DOTGIT_GIT_PORT: '8092', DOTGIT_NODE_ID: 'node-2', DOTGIT_NODE_URL: 'http://127.0.0.1:8092' });
  expect(env('sandbox-3')).toMatchObject({ DOTGIT_WORKER_PORT: '8113', DOTGIT_WORKER_ROLES: 'sandbox', DOTGIT_HOST_ID: 'sandbox-3' });
  // Storage workers serve their node's queue (dotgit-storage@<node id>) on its disk.
  expect(env('orchestration-1')).toMatchObject({ DOTGIT_WORKER_PORT: '8083', DOTGIT_WORKER_ROLES: 'orchestration,storage', DOTGIT_HOST_ID: 'orchestration-1', DOTGIT_NODE_ID: 'node-1' });
  expect(env('storage-2')).toMatchObject({ DOTGIT_WORKER_PORT: '8123', DOTGIT_WORKER_ROLES: 'storage', DOTGIT_HOST_ID: 'storage-2', DOTGIT_NODE_ID: 'node-2' });
  expect(env('sandbox-1').DOTGIT_NODE_ID).toBeUndefined();
  for (const i of by.values()) {
    expect(i.env).toMatchObject({
      DOTGIT_API_UPSTREAMS: 'http://127.0.0.1:8081,http://127.0.0.1:8091',
      DOTGIT_GIT_UPSTREAMS: 'http://127.0.0.1:8082,http://127.0.0.1:8092',
      DOTGIT_FS_OBJECTS_DIR: '/d/objects',
      DOTGIT_REPLICA_NODES: '1',
      DOTGIT_INTERNAL_SECRET: serviceEnv.DOTGIT_INTERNAL_SECRET,
    });
  }
  // A worker's topology instance is the host id it resolves; every other one's is its name.
  expect([...by.values()].filter((i) => i.instance === undefined).map((i) => i.name)).toEqual(['orchestration-1', 'sandbox-1', 'sandbox-2', 'sandbox-3', 'storage-2']);
});

test('configured ports that would meet are refused with a message, not used twice', async () => {
  await expect(fleetLayout({ serviceEnv: { ...serviceEnv, DOTGIT_API_PORT: '8090' }, dataDir: '/d', objectsDir: undefined, internalHost: '127.0.0.1', port: async (b, n) => nthPort(b, n) })).rejects.toThrow(
    'the fleet would use port 8090 twice',
  );
});

test('without --fleet: one of each on the platform environment, as before', () => {
  expect(singleLayout(serviceEnv).map((i) => [i.name, i.role, i.instance, i.port])).toEqual([
    ['git-server', 'git-server', 'git-server-1', 8082],
    ['api', 'api', 'api-1', 8081],
    ['worker', 'worker', undefined, 8083],
    ['gateway', 'gateway', 'gateway-1', 8080],
  ]);
});

test("free-picked ports (tests) never land on a role's own port, which is not bound yet when the others are picked (seen in CI)", async () => {
  // The picker first offers the worker role's own port to every later instance, then fresh ones.
  let next = 20_000;
  const offered = new Set<number>();
  const port = async (base: number, n: number) => {
    if (n === 1) return base;
    if (!offered.has(n)) {
      offered.add(n);
      return 8083;
    }
    return next++;
  };
  const ports = (await fleetLayout({ serviceEnv, dataDir: '/d', objectsDir: '/d/objects', internalHost: '127.0.0.1', port })).map((i) => i.port);
  expect(new Set(ports).size).toBe(ports.length);
  expect(ports.filter((p) => p === 8083)).toHaveLength(1);
});
