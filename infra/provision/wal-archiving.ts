import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { walPrefixOf } from '../../core/backup-types';
import { compiledEntry } from '../compiled';
import { ROOT } from '../root';
import { PostgresPermissionError } from './errors';

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * The `archive_command` of the embedded Postgres: our `infra/wal-archive.ts` with the data dir, so
 * it writes to the same object store as the worker. Postgres runs it as user `postgres` (when we
 * are root), so that user gets the store's `wal/` folder. With `database` (another database of the
 * shard map, ADR 0043): its own `wal@<database>/` folder.
 */
export function prepareWalArchiving(o: { dataDir: string; objectsDir: string; pgDataDir: string; database?: string }): string {
  const walDir = path.join(o.objectsDir, walPrefixOf(o.database));
  fs.mkdirSync(walDir, { recursive: true });
  if (process.getuid?.() === 0) {
    const r = spawnSync('chown', ['postgres:postgres', walDir], { encoding: 'utf8' });
    if (r.status !== 0) throw new PostgresPermissionError(`cannot give ${walDir} to user postgres: ${r.stderr}`);
  }
  // %p is relative to the cluster directory, where Postgres runs the command; we run from ROOT.
  // Compiled when the build has run (ADR 0029: no TypeScript compile per WAL segment), else from source.
  const compiled = compiledEntry('infra/wal-archive.ts');
  const script = fs.existsSync(compiled) ? q(compiled) : '--import tsx infra/wal-archive.ts';
  return `cd ${q(ROOT)} && DOTGIT_DATA_DIR=${q(o.dataDir)} exec ${q(process.execPath)} ${script} ${q(o.pgDataDir)}/%p %f${o.database ? ` ${q(o.database)}` : ''}`;
}
