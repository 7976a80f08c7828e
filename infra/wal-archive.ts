import path from 'node:path';
import { promises as fs, createReadStream } from 'node:fs';
import { loadConfig } from '../core/config';
import { backupStore } from '../core/backup-store';
import { WAL_PREFIX } from '../core/backup-types';

/**
 * Postgres' `archive_command`: `wal-archive.ts <path of the WAL file> <its name>` puts the file into
 * the object store under `wal/<name>`. Exit 0 only once it is stored, so Postgres keeps (and
 * retries) a segment until then. Runs as the `postgres` OS user; the platform gives that user the
 * `wal/` folder of a filesystem store. An already archived file of the same size is success (a
 * retry after a crash between the put and our exit).
 */
async function main(): Promise<void> {
  const [file, name] = process.argv.slice(2);
  if (!file || !name || !/^[0-9A-F]{24}(\.partial|\.history|\.[0-9A-F]{8}\.backup)?$|^[0-9A-F]{8}\.history$/.test(name)) {
    throw new Error(`usage: wal-archive.ts <path> <WAL file name>; got ${JSON.stringify(process.argv.slice(2))}`);
  }
  const store = backupStore(loadConfig());
  const key = `${WAL_PREFIX}/${name}`;
  const size = (await fs.stat(path.resolve(file))).size;
  if (await store.exists(key)) {
    const stored = await store.getBuffer(key);
    if (stored.length === size) return;
    throw new Error(`${key} is already archived with different content`);
  }
  await store.put(key, createReadStream(path.resolve(file)));
}

main().catch((err) => {
  console.error(`wal-archive: ${(err as Error).message}`);
  process.exit(1);
});
