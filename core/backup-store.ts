import { dataPaths, type Config } from './config';
import { createObjectStore } from './object-store-factory';
import type { ObjectStore } from './object-store';

/**
 * The object store backups and the WAL archive go to: the configured driver (filesystem or S3),
 * built in one place so the worker, the api and Postgres' archive command always agree.
 */
export function backupStore(config: Pick<Config, 'dataDir' | 'objectStore'>): ObjectStore {
  return createObjectStore(config, dataPaths(config));
}
