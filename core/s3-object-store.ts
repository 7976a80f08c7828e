import { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { NotFoundError } from './errors';
import { assertObjectKey, type ObjectStore } from './object-store';

/** Where an S3 driver connects; the configuration's `objectStore` (driver `s3`) has this shape. */
export interface S3Connection {
  /** Unset = AWS S3 itself; set for S3-compatible servers (MinIO, Ceph, moto, R2, …). */
  endpoint?: string;
  region: string;
  /** Both or neither: unset = the SDK's default chain (AWS_* variables, profile, instance role). */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** `http://host/bucket/key` instead of `http://bucket.host/key`; most S3-compatible servers need it. */
  forcePathStyle: boolean;
}

export function createS3Client(c: S3Connection): S3Client {
  return new S3Client({
    region: c.region,
    endpoint: c.endpoint,
    forcePathStyle: c.forcePathStyle,
    credentials: c.accessKeyId && c.secretAccessKey ? { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey } : undefined,
    // Newer SDKs add CRC32 trailers to every upload by default, which many S3-compatible servers
    // reject or ignore; send checksums only where S3 requires them (as the SDK did until 2025).
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

export interface S3ObjectStoreOptions {
  client: S3Client;
  bucket: string;
  /** Every key is stored under `<prefix>/`, so one bucket can hold several installations. Default: none. */
  prefix?: string;
  /** Keys per ListObjectsV2 page; S3's default and maximum is 1000 (tests use a small one). */
  pageSize?: number;
  /** Part size of streamed uploads; 5 MiB (S3's minimum) by default. */
  partSize?: number;
}

const MIN_PART_SIZE = 5 * 1024 * 1024;

/**
 * S3 driver. Buffers go up in one PutObject; streams of unknown length through lib-storage's
 * multipart Upload, which holds at most 4 parts in memory and aborts the multipart upload when the
 * source fails, so as with the filesystem driver no reader ever sees half an object.
 */
export class S3ObjectStore implements ObjectStore {
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly pageSize: number;
  private readonly partSize: number;

  constructor(o: S3ObjectStoreOptions) {
    this.client = o.client;
    this.bucket = o.bucket;
    const p = (o.prefix ?? '').replace(/^\/+|\/+$/g, '');
    if (p) assertObjectKey(p);
    this.prefix = p ? `${p}/` : '';
    this.pageSize = o.pageSize ?? 1000;
    this.partSize = Math.max(o.partSize ?? MIN_PART_SIZE, MIN_PART_SIZE);
  }

  private s3Key(key: string): string {
    assertObjectKey(key);
    return this.prefix + key;
  }

  async put(key: string, body: Buffer | Readable): Promise<{ size: number }> {
    const Key = this.s3Key(key);
    if (Buffer.isBuffer(body)) {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body: body, ContentLength: body.length }));
      return { size: body.length };
    }
    let size = 0;
    const counted = Readable.from(
      (async function* () {
        for await (const chunk of body as AsyncIterable<Buffer | string>) {
          const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
          size += buf.length;
          yield buf;
        }
      })(),
      { objectMode: false },
    );
    await new Upload({ client: this.client, params: { Bucket: this.bucket, Key, Body: counted }, partSize: this.partSize }).done();
    return { size };
  }

  async get(key: string): Promise<Readable> {
    const Key = this.s3Key(key);
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key }));
      if (!(res.Body instanceof Readable)) throw new Error(`S3 GetObject ${Key}: no stream body`);
      return res.Body;
    } catch (err) {
      throw notFoundOr(err, key);
    }
  }

  async getBuffer(key: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of await this.get(key)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.s3Key(key) }));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /** Like the filesystem driver, `prefix` names a folder: `a/b` lists `a/b/…`, never `a/bc`. */
  async list(prefix: string): Promise<string[]> {
    const base = prefix.replace(/\/+$/, '');
    if (base) assertObjectKey(base);
    const Prefix = this.prefix + (base ? `${base}/` : '');
    const out: string[] = [];
    let ContinuationToken: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix, MaxKeys: this.pageSize, ContinuationToken }),
      );
      for (const o of page.Contents ?? []) if (o.Key) out.push(o.Key.slice(this.prefix.length));
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
    // S3 orders by UTF-8 bytes; sort as the filesystem driver does so callers see one order.
    return out.sort();
  }

  async delete(key: string): Promise<void> {
    // Absent keys are no error, in S3 as in the filesystem driver.
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.s3Key(key) }));
  }
}

/** A missing key (GetObject: NoSuchKey; HeadObject has no body, so only its 404). A missing bucket is not "not found": it is a misconfiguration. */
function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  if (e?.name === 'NoSuchBucket') return false;
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404;
}

function notFoundOr(err: unknown, key: string): unknown {
  return isNotFound(err) ? new NotFoundError(`object ${key} not found`) : err;
}
