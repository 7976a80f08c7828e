import type { Readable } from 'node:stream';

/**
 * Where artifacts, logs, backups and LFS objects live. Keys are `/`-separated relative paths made
 * by our code, never by users. Drivers: filesystem (`fs-object-store.ts`), S3 (later).
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
