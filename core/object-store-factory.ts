import type { Config } from './config';
import { FsObjectStore } from './fs-object-store';
import type { ObjectStore } from './object-store';
import type * as S3Driver from './s3-object-store';

/**
 * The object store the configuration names (`DOTGIT_OBJECT_STORE`): files under
 * `DOTGIT_FS_OBJECTS_DIR` (default `paths.objects`), or an S3 bucket. Every service builds its
 * store here, so api, git-server and worker always agree on where an object is.
 */
export function createObjectStore(config: Pick<Config, 'objectStore'>, paths: { objects: string }): ObjectStore {
  const c = config.objectStore;
  if (c.driver === 'fs') return new FsObjectStore(c.dir ?? paths.objects);
  // Loaded only here: the AWS SDK is ~20 MiB resident in every process, and the fs store needs none of it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createS3Client, S3ObjectStore } = require('./s3-object-store') as typeof S3Driver;
  return new S3ObjectStore({ client: createS3Client(c), bucket: c.bucket, prefix: c.prefix });
}

/** The folder of the filesystem store (`DOTGIT_FS_OBJECTS_DIR`, default `paths.objects`); undefined with S3. */
export function fsObjectsDir(config: Pick<Config, 'objectStore'>, paths: { objects: string }): string | undefined {
  return config.objectStore.driver === 'fs' ? (config.objectStore.dir ?? paths.objects) : undefined;
}
