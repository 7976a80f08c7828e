import { ownPlatformEnv } from '../../infra/own-platform-env';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, PutBucketVersioningCommand, type S3Client } from '@aws-sdk/client-s3';
import { RunscDriver } from '../../activities/sandbox/runsc-driver';
import { createS3Client } from '../../core/s3-object-store';
import { startPlatform, ROOT, type Platform } from '../../infra/platform';
import { startS3Server, type S3ServerHandle } from '../../infra/provision/s3-server';
import { git, localRepo, runIdsFrom, tempDir } from '../helpers/git';

// A platform of its own started with DOTGIT_OBJECT_STORE=s3 against the local S3 server: the
// worker's logs and artifacts and the git-server's LFS objects land in the bucket, the api serves
// them back from there, and nothing goes to the data dir's objects folder.

const BUCKET = 'dotgit-e2e';
const PREFIX = 'install-1';
const PIPELINE = `
jobs:
  build:
    steps:
      - name: compile
        run: |
          mkdir -p out
          printf 'built %s\\n' "$DOTGIT_COMMIT" > out/build.txt
          echo "compiled"
    artifacts: [out/build.txt]
`;
const LFS_FILTERS = ['-c', 'filter.lfs.smudge=git-lfs smudge -- %f', '-c', 'filter.lfs.process=git-lfs filter-process', '-c', 'filter.lfs.required=true', '-c', 'filter.lfs.clean=git-lfs clean -- %f'];

let s3: S3ServerHandle;
let client: S3Client;
let platform: Platform;
let dataDir: string;
let token: string;
const tenant = 'acme';

async function call(method: string, p: string, body?: unknown, auth = token): Promise<{ status: number; body: any; text: string }> {
  const res = await fetch(`${platform.gatewayUrl}${p}`, {
    method,
    headers: { authorization: `Bearer ${auth}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, text, body: (res.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) : text };
}
const cloneUrl = (repo: string) => {
  const u = new URL(`${platform.gatewayUrl}/${tenant}/${repo}.git`);
  u.username = 'x';
  u.password = token;
  return u.toString();
};
async function bucketKeys(): Promise<string[]> {
  const res = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${PREFIX}/` }));
  return (res.Contents ?? []).map((o) => o.Key!);
}
async function filesUnder(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  return (await fs.readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name);
}

beforeAll(async () => {
  dataDir = path.join(ROOT, '.test-data', `s3-platform-${process.pid}`);
  await fs.rm(dataDir, { recursive: true, force: true });
  s3 = await startS3Server({ toolsDir: path.join(ROOT, '.tools'), dataDir: path.join(dataDir, 's3'), port: 0, log: { info: () => {}, debug: () => {}, warn: console.warn } });
  client = createS3Client({ ...s3, forcePathStyle: true });
  await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  await client.send(new PutBucketVersioningCommand({ Bucket: BUCKET, VersioningConfiguration: { Status: 'Enabled' } }));
  platform = await startPlatform({
    env: ownPlatformEnv(dataDir, {
      DOTGIT_OBJECT_STORE: 's3',
      DOTGIT_S3_ENDPOINT: s3.endpoint,
      DOTGIT_S3_BUCKET: BUCKET,
      DOTGIT_S3_PREFIX: PREFIX,
      DOTGIT_S3_ACCESS_KEY_ID: s3.accessKeyId,
      DOTGIT_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    }),
    log: { info: () => {}, debug: () => {}, warn: console.warn },
    ephemeral: true,
  });
  token = platform.adminToken;
  expect((await call('POST', '/api/v1/tenants', { name: tenant })).status).toBe(201);
  expect((await call('POST', `/api/v1/tenants/${tenant}/users`, { username: 'alice', role: 'admin' })).status).toBe(201);
  const t = await call('POST', '/api/v1/tokens', { username: 'alice', scopes: ['read', 'write', 'admin'] });
  expect(t.status).toBe(201);
  token = t.body.token;
}, 600_000);

afterAll(async () => {
  client?.destroy();
  await platform?.stop();
  await s3?.stop();
  // runsc pins a network namespace under its state dir; unmount it or the removal fails with EBUSY.
  await RunscDriver.releaseState(path.join(dataDir, 'sandbox'));
  await fs.rm(dataDir, { recursive: true, force: true });
}, 120_000);

test('a pipeline\'s log and artifact are written to the bucket and served from it by the api', async () => {
  expect((await call('POST', '/api/v1/repos', { owner: tenant, name: 'web' })).status).toBe(201);
  const work = await localRepo({ '.dotgit/pipeline.yml': PIPELINE });
  const push = await git(['push', cloneUrl('web'), 'main'], work);
  expect(push.code).toBe(0);
  const [runId] = runIdsFrom(push.stderr);
  expect(runId).toBeDefined();
  const commit = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();

  let run: any;
  for (const deadline = Date.now() + 120_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 500))) {
    run = (await call('GET', `/api/v1/runs/${encodeURIComponent(runId)}`)).body;
    if (['success', 'failure', 'cancelled'].includes(run?.status)) break;
  }
  expect(run.status).toBe('success');

  const keys = await bucketKeys();
  const artifactKey = `${PREFIX}/artifacts/${runId}/build/out/build.txt`;
  expect(keys).toContain(artifactKey);
  const logKey = keys.find((k) => k.startsWith(`${PREFIX}/logs/${runId}/build/`) && k.endsWith('.log.gz'));
  expect(logKey).toBeDefined();
  const storedLog = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: logKey! }));
  expect(gunzipSync(Buffer.from(await storedLog.Body!.transformToByteArray())).toString()).toContain('compiled');

  const artifact = await call('GET', `/api/v1/runs/${encodeURIComponent(runId)}/artifacts/out/build.txt`);
  expect(artifact.status).toBe(200);
  expect(artifact.text).toBe(`built ${commit}\n`);
  const logs = await call('GET', `/api/v1/runs/${encodeURIComponent(runId)}/logs?job=build&step=compile`);
  expect(logs.status).toBe(200);
  expect(logs.text).toContain('compiled');

  expect(await filesUnder(path.join(dataDir, 'objects'))).toEqual([]);
});

test('git lfs objects go to the bucket and come back on clone', async () => {
  expect((await call('POST', '/api/v1/repos', { owner: tenant, name: 'assets' })).status).toBe(201);
  const big = randomBytes(1024 * 1024 + 7);
  const oid = createHash('sha256').update(big).digest('hex');
  const dir = tempDir('dotgit-s3-lfs-');
  for (const args of [['init', '-q', '-b', 'main'], ['lfs', 'install', '--local'], ['lfs', 'track', '*.bin']]) expect((await git(args, dir)).code).toBe(0);
  await fs.writeFile(path.join(dir, 'big.bin'), big);
  await git(['add', '-A'], dir);
  expect((await git(['commit', '-qm', 'lfs'], dir)).code).toBe(0);
  expect((await git(['push', cloneUrl('assets'), 'main'], dir)).code).toBe(0);

  expect((await bucketKeys()).filter((k) => k.includes(oid))).toHaveLength(1);
  const clone = path.join(tempDir('dotgit-s3-lfs-clone-'), 'c');
  expect((await git([...LFS_FILTERS, 'clone', '-q', cloneUrl('assets'), clone])).code).toBe(0);
  expect((await fs.readFile(path.join(clone, 'big.bin'))).equals(big)).toBe(true);
  expect(await filesUnder(path.join(dataDir, 'objects'))).toEqual([]);
});
