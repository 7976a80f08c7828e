import type { Readable } from 'node:stream';

/**
 * Where artifacts, logs, backups and LFS objects live. Keys are `/`-separated relative paths made
 * by our code, never by users. Drivers: filesystem (`fs-object-store.ts`), S3 (`s3-object-store.ts`);
 * `object-store-factory.ts` picks one from the configuration.
 */
export interface ObjectStore {
  put(key: string, body: Buffer | Readable): Promise<{ size: number }>;
  /** Throws NotFoundError when the key is absent. */
  get(key: string): Promise<Readable>;
  getBuffer(key: string): Promise<Buffer>;
  exists(key: string): Promise<boolean>;
  list(prefix: string): Promise<string[]>;
  delete(key: string): Promise<void>;
}

/** Thrown when a key would leave the store's root or is otherwise malformed (a programming error). */
export class InvalidKeyError extends Error {
  override readonly name = 'InvalidKeyError';
}

/**
 * Every driver accepts the same keys: relative, no empty, `.` or `..` segments. S3 would store
 * `a/../b` as is while the filesystem resolves it, so the rule keeps drivers interchangeable.
 */
export function assertObjectKey(key: string): void {
  if (!key || key.startsWith('/') || key.split('/').some((p) => p === '' || p === '.' || p === '..')) {
    throw new InvalidKeyError(`invalid object key: ${JSON.stringify(key)}`);
  }
}
