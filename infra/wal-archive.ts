import path from 'node:path';
import { promises as fs, createReadStream } from 'node:fs';
import { loadConfig } from '../core/config';
import { backupStore } from '../core/backup-store';
import { walPrefixOf } from '../core/backup-types';

/**
 * Postgres' `archive_command`: `wal-archive.ts <path of the WAL file> <its name> [<database>]` puts
 * the file into the object store under `wal/<name>`, or `wal@<database>/<name>` for another database
 * of the shard map (its name in DOTGIT_SHARD_MAP; ADR 0043). Exit 0 only once it is stored, so Postgres keeps (and
 * retries) a segment until then. Runs as the `postgres` OS user; the platform gives that user the
 * `wal/` folder of a filesystem store. An already archived file of the same size is success (a
 * retry after a crash between the put and our exit).
 */
async function main(): Promise<void> {
  const [file, name, database] = process.argv.slice(2);
  if (
    !file ||
    !name ||
    !/^[0-9A-F]{24}(\.partial|\.history|\.[0-9A-F]{8}\.backup)?$|^[0-9A-F]{8}\.history$/.test(name) ||
    (database !== undefined && !/^[a-z0-9][a-z0-9_-]{0,31}$/.test(database))
  ) {
    throw new Error(`usage: wal-archive.ts <path> <WAL file name> [<database name of the shard map>]; got ${JSON.stringify(process.argv.slice(2))}`);
  }
  const store = backupStore(loadConfig());
  const key = `${walPrefixOf(database)}/${name}`;
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
