import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../core/config';
import { FsObjectStore } from '../../core/fs-object-store';
import { createObjectStore } from '../../core/object-store-factory';
import { S3ObjectStore } from '../../core/s3-object-store';
import { ROOT } from '../../infra/root';

// DOTGIT_OBJECT_STORE and DOTGIT_S3_*: validated in the one config schema, turned into a driver by the factory.

const s3 = (extra: Record<string, string> = {}) => ({ DOTGIT_OBJECT_STORE: 's3', DOTGIT_S3_BUCKET: 'dotgit-artifacts', ...extra });
const problem = (env: NodeJS.ProcessEnv) => {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
};

test('the default is the filesystem store under the data dir; S3 variables are ignored then', () => {
  const config = loadConfig({ DOTGIT_S3_BUCKET: 'Not A Bucket!', DOTGIT_S3_ENDPOINT: 'nonsense' });
  expect(config.objectStore).toEqual({ driver: 'fs' });
  expect(createObjectStore(config, { objects: '/tmp/x' })).toBeInstanceOf(FsObjectStore);
});

test('s3 with a bucket: region us-east-1, no prefix, path-style only with an endpoint', () => {
  expect(loadConfig(s3()).objectStore).toEqual({ driver: 's3', bucket: 'dotgit-artifacts', region: 'us-east-1', prefix: '', forcePathStyle: false });
  const full = loadConfig(
    s3({
      DOTGIT_S3_ENDPOINT: 'http://127.0.0.1:9000',
      DOTGIT_S3_REGION: 'eu-central-1',
      DOTGIT_S3_PREFIX: 'prod/dotgit/',
      DOTGIT_S3_ACCESS_KEY_ID: 'AKIA',
      DOTGIT_S3_SECRET_ACCESS_KEY: 'secret',
    }),
  );
  expect(full.objectStore).toEqual({
    driver: 's3',
    bucket: 'dotgit-artifacts',
    endpoint: 'http://127.0.0.1:9000',
    region: 'eu-central-1',
    prefix: 'prod/dotgit/',
    accessKeyId: 'AKIA',
    secretAccessKey: 'secret',
    forcePathStyle: true,
  });
  expect(loadConfig(s3({ DOTGIT_S3_ENDPOINT: 'http://127.0.0.1:9000', DOTGIT_S3_FORCE_PATH_STYLE: 'false' })).objectStore).toMatchObject({ forcePathStyle: false });
  expect(createObjectStore(full, { objects: '/tmp/x' })).toBeInstanceOf(S3ObjectStore);
});

test.each<[string, NodeJS.ProcessEnv, string]>([
  ['s3 without a bucket', { DOTGIT_OBJECT_STORE: 's3' }, 'DOTGIT_S3_BUCKET is required when DOTGIT_OBJECT_STORE=s3'],
  ['an unknown driver', { DOTGIT_OBJECT_STORE: 'gcs' }, 'DOTGIT_OBJECT_STORE must be fs or s3'],
  ['a malformed bucket name', s3({ DOTGIT_S3_BUCKET: 'My_Bucket' }), 'DOTGIT_S3_BUCKET is not a valid bucket name'],
  ['an endpoint that is no URL', s3({ DOTGIT_S3_ENDPOINT: 'minio:9000' }), 'DOTGIT_S3_ENDPOINT must be an http(s) URL'],
  ['an endpoint of another scheme', s3({ DOTGIT_S3_ENDPOINT: 'ftp://host/' }), 'DOTGIT_S3_ENDPOINT must be an http(s) URL'],
  ['a prefix that climbs out', s3({ DOTGIT_S3_PREFIX: 'a/../b' }), 'DOTGIT_S3_PREFIX must be a relative path'],
  ['an absolute prefix', s3({ DOTGIT_S3_PREFIX: '/root' }), 'DOTGIT_S3_PREFIX must be a relative path'],
  ['a key id without its secret', s3({ DOTGIT_S3_ACCESS_KEY_ID: 'AKIA' }), 'set both DOTGIT_S3_ACCESS_KEY_ID and DOTGIT_S3_SECRET_ACCESS_KEY'],
  ['a secret without its key id', s3({ DOTGIT_S3_SECRET_ACCESS_KEY: 's' }), 'set both DOTGIT_S3_ACCESS_KEY_ID and DOTGIT_S3_SECRET_ACCESS_KEY'],
  ['a path-style flag that is no boolean', s3({ DOTGIT_S3_FORCE_PATH_STYLE: 'yes' }), 'DOTGIT_S3_FORCE_PATH_STYLE must be true or false'],
])('refused at start-up: %s', (_, env, message) => {
  expect(problem(env)).toContain(message);
});

test('a service started with DOTGIT_OBJECT_STORE=s3 and no bucket exits at once, naming the variable', () => {
  const res = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'git-server/main.ts')], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, DOTGIT_OBJECT_STORE: 's3', DOTGIT_DATA_DIR: path.join(ROOT, '.test-data', 'never-used') },
    encoding: 'utf8',
    timeout: 60_000,
  });
  expect(res.status).toBe(1);
  expect(res.stderr).toContain('DOTGIT_S3_BUCKET is required when DOTGIT_OBJECT_STORE=s3');
});
