import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import {
  CreateBucketCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { loadConfig } from '../../core/config';
import { NotFoundError } from '../../core/errors';
import { FsObjectStore } from '../../core/fs-object-store';
import { InvalidKeyError, type ObjectStore } from '../../core/object-store';
import { createObjectStore } from '../../core/object-store-factory';
import { createS3Client, S3ObjectStore } from '../../core/s3-object-store';
import { silentLog } from '../../infra/provision/log';
import { startS3Server, type S3ServerHandle } from '../../infra/provision/s3-server';
import { ROOT } from '../../infra/root';

/**
 * One contract, every driver: the filesystem store and the S3 store against a real local
 * S3-compatible server (moto, provisioned like `npm start` provisions its tools), built through
 * the same factory and configuration the services use.
 */

const BUCKET = 'dotgit-objects';
let server: S3ServerHandle;
let client: S3Client;
let scratch: string;

beforeAll(async () => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'dotgit-object-store-'));
  server = await startS3Server({ toolsDir: path.join(ROOT, '.tools'), dataDir: path.join(scratch, 's3'), port: 0, log: silentLog });
  client = createS3Client({ ...server, forcePathStyle: true });
  await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  // Versioned, as backups will want it: deletes then leave delete markers, which must read as absent.
  await client.send(new PutBucketVersioningCommand({ Bucket: BUCKET, VersioningConfiguration: { Status: 'Enabled' } }));
}, 300_000);

afterAll(async () => {
  client?.destroy();
  await server?.stop();
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

let counter = 0;
const unique = (p: string) => `${p}-${process.pid}-${++counter}`;

/** The S3 store the way a service gets it: environment → loadConfig → createObjectStore. */
function s3StoreFromEnv(prefix: string): ObjectStore {
  const config = loadConfig({
    DOTGIT_OBJECT_STORE: 's3',
    DOTGIT_S3_ENDPOINT: server.endpoint,
    DOTGIT_S3_BUCKET: BUCKET,
    DOTGIT_S3_REGION: server.region,
    DOTGIT_S3_PREFIX: prefix,
    DOTGIT_S3_ACCESS_KEY_ID: server.accessKeyId,
    DOTGIT_S3_SECRET_ACCESS_KEY: server.secretAccessKey,
  });
  return createObjectStore(config, { objects: path.join(scratch, 'unused') });
}

const drivers: Array<[string, () => ObjectStore]> = [
  ['fs', () => createObjectStore(loadConfig({}), { objects: fs.mkdtempSync(path.join(scratch, 'fs-')) })],
  ['s3', () => s3StoreFromEnv(unique('install'))],
];

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
async function drain(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** `total` random bytes in 64 KiB chunks from a generator: a stream whose length nobody knows in advance. */
function streamOf(total: number, failAfter?: number): { stream: Readable; digest: () => string } {
  const hash = createHash('sha256');
  async function* chunks() {
    let sent = 0;
    while (sent < total) {
      if (failAfter !== undefined && sent >= failAfter) throw new Error('source broke');
      const c = randomBytes(Math.min(64 * 1024, total - sent));
      hash.update(c);
      sent += c.length;
      yield c;
    }
  }
  return { stream: Readable.from(chunks()), digest: () => hash.digest('hex') };
}

describe.each(drivers)('%s driver', (name, make) => {
  let store: ObjectStore;
  beforeAll(() => {
    store = make();
    if (name === 's3') expect(store).toBeInstanceOf(S3ObjectStore);
    else expect(store).toBeInstanceOf(FsObjectStore);
  });

  test('put a Buffer under a nested key; get, getBuffer and exists see it; a second put replaces it', async () => {
    const key = 'runs/r1/jobs/build/logs/compile.log.gz';
    expect(await store.exists(key)).toBe(false);
    expect(await store.put(key, Buffer.from('first version'))).toEqual({ size: 13 });
    expect(await store.exists(key)).toBe(true);
    expect((await store.getBuffer(key)).toString()).toBe('first version');
    await store.put(key, Buffer.from('second'));
    expect((await drain(await store.get(key))).toString()).toBe('second');
    expect(await store.exists('runs/r1/jobs')).toBe(false); // a "folder" is not an object
  });

  test('a 12 MiB stream of unknown length goes up whole (multipart on S3) and streams back identical', async () => {
    const total = 12 * 1024 * 1024 + 12345;
    const src = streamOf(total);
    expect(await store.put('big/blob.bin', src.stream)).toEqual({ size: total });
    const expected = src.digest();
    expect(sha256(await store.getBuffer('big/blob.bin'))).toBe(expected);
    const hash = createHash('sha256');
    let size = 0;
    for await (const c of await store.get('big/blob.bin')) {
      hash.update(c as Buffer);
      size += (c as Buffer).length;
    }
    expect(size).toBe(total);
    expect(hash.digest('hex')).toBe(expected);
  });

  test('an empty stream and an empty Buffer make empty objects', async () => {
    expect(await store.put('empty/stream', Readable.from([]))).toEqual({ size: 0 });
    expect(await store.put('empty/buffer', Buffer.alloc(0))).toEqual({ size: 0 });
    expect((await store.getBuffer('empty/stream')).length).toBe(0);
    expect(await store.exists('empty/buffer')).toBe(true);
  });

  test('a source that fails mid-way rejects the put and leaves no object behind', async () => {
    const broken = streamOf(8 * 1024 * 1024, 6 * 1024 * 1024); // past the first 5 MiB part
    await expect(store.put('broken/half.bin', broken.stream)).rejects.toThrow('source broke');
    expect(await store.exists('broken/half.bin')).toBe(false);
    expect(await store.list('broken')).toEqual([]);
  });

  test('absent keys: get and getBuffer throw NotFoundError, exists is false, delete is a no-op', async () => {
    await expect(store.get('nothing/here')).rejects.toBeInstanceOf(NotFoundError);
    await expect(store.getBuffer('nothing/here')).rejects.toBeInstanceOf(NotFoundError);
    expect(await store.exists('nothing/here')).toBe(false);
    await expect(store.delete('nothing/here')).resolves.toBeUndefined();
  });

  test('delete removes the object: gone from get, exists and list', async () => {
    await store.put('del/a', Buffer.from('a'));
    await store.put('del/b', Buffer.from('b'));
    await store.delete('del/a');
    expect(await store.exists('del/a')).toBe(false);
    await expect(store.get('del/a')).rejects.toBeInstanceOf(NotFoundError);
    await expect(store.getBuffer('del/a')).rejects.toBeInstanceOf(NotFoundError);
    expect(await store.list('del')).toEqual(['del/b']);
  });

  test('list takes a folder prefix: `p/1` lists p/1/… at any depth, never p/10, sorted', async () => {
    for (const k of ['p/1/b/deep/x', 'p/1/a', 'p/10/c', 'p/1-x', 'q/1/a']) await store.put(k, Buffer.from(k));
    expect(await store.list('p/1')).toEqual(['p/1/a', 'p/1/b/deep/x']);
    expect(await store.list('p/1/')).toEqual(['p/1/a', 'p/1/b/deep/x']);
    expect(await store.list('p')).toEqual(['p/1-x', 'p/1/a', 'p/1/b/deep/x', 'p/10/c']);
    expect(await store.list('p/nope')).toEqual([]);
    const all = await store.list('');
    expect(all).toEqual(expect.arrayContaining(['p/1/a', 'q/1/a']));
    expect(all).toEqual([...all].sort());
  });

  test('list returns every key when there are more than one page of them (1,000 is S3\'s page)', async () => {
    const keys = Array.from({ length: 1010 }, (_, i) => `many/${String(i).padStart(4, '0')}`);
    for (let i = 0; i < keys.length; i += 25) await Promise.all(keys.slice(i, i + 25).map((k) => store.put(k, Buffer.from('x'))));
    expect(await store.list('many')).toEqual(keys);
  });

  test('malformed keys are refused before anything is stored', async () => {
    for (const bad of ['', '/abs', 'a//b', '../escape', 'a/./b', 'a/..', 'trailing/']) {
      await expect(store.put(bad, Buffer.from('x'))).rejects.toBeInstanceOf(InvalidKeyError);
      await expect(store.get(bad)).rejects.toBeInstanceOf(InvalidKeyError);
    }
    await expect(store.list('../up')).rejects.toBeInstanceOf(InvalidKeyError);
  });
});

describe('S3 driver specifics', () => {
  test('keys live under the configured prefix; stores with other prefixes do not see them', async () => {
    const a = s3StoreFromEnv('tenant-a/dotgit');
    const b = s3StoreFromEnv('tenant-b');
    await a.put('x/y.txt', Buffer.from('a'));
    expect(await a.list('')).toEqual(['x/y.txt']);
    expect(await b.exists('x/y.txt')).toBe(false);
    expect(await b.list('')).toEqual([]);
    const raw = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'tenant-a/' }));
    expect(raw.Contents?.map((o) => o.Key)).toEqual(['tenant-a/dotgit/x/y.txt']);
  });

  test('a small page size still lists everything, in order', async () => {
    const store = new S3ObjectStore({ client, bucket: BUCKET, prefix: unique('paged'), pageSize: 7 });
    const keys = Array.from({ length: 40 }, (_, i) => `k/${String(i).padStart(2, '0')}`);
    await Promise.all(keys.map((k) => store.put(k, Buffer.from(k))));
    expect(await store.list('k')).toEqual(keys);
  });

  test('a failed multipart upload is aborted, not left to accumulate parts', async () => {
    const prefix = unique('aborted');
    const store = new S3ObjectStore({ client, bucket: BUCKET, prefix });
    await expect(store.put('half.bin', streamOf(16 * 1024 * 1024, 11 * 1024 * 1024).stream)).rejects.toThrow('source broke');
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: prefix }));
    expect(uploads.Uploads ?? []).toEqual([]);
  });

  test('the local server keeps object versions (what backups will rely on); delete leaves a marker', async () => {
    const prefix = unique('versions');
    const store = new S3ObjectStore({ client, bucket: BUCKET, prefix });
    await store.put('v.txt', Buffer.from('one'));
    await store.put('v.txt', Buffer.from('two'));
    await store.delete('v.txt');
    const v = await client.send(new ListObjectVersionsCommand({ Bucket: BUCKET, Prefix: `${prefix}/` }));
    expect(v.Versions?.length).toBe(2);
    expect(v.DeleteMarkers?.length).toBe(1);
    expect(await store.exists('v.txt')).toBe(false);
  });

  test('a missing bucket is an error, not "not found"', async () => {
    const store = new S3ObjectStore({ client, bucket: 'no-such-bucket-here', prefix: '' });
    const err = await store.get('k').then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(NotFoundError);
    expect((err as Error).name).toBe('NoSuchBucket');
  });
});
