import { promises as fs, readdirSync } from 'node:fs';
import path from 'node:path';
import type { Db } from './db';
import { liveClientsOlderThan, type SchemaClient } from './stores/schema-clients-store';

/** The folder of plain SQL migrations, applied in file-name order, each once. */
export const MIGRATIONS_DIR = path.resolve(__dirname, '..', 'migrations');

const MIGRATION_FILE = /^(\d{4})_[a-z0-9_]+\.sql$/;

/**
 * A migration's phase (docs/migrations.md), declared on its first line as `-- phase: expand` or
 * `-- phase: contract`:
 * - `expand` is safe while processes of the previous release still run (adds tables, nullable or
 *   defaulted columns, indexes, triggers that keep old and new columns in step, backfills);
 * - `contract` breaks them (drops or renames what old code reads or writes), so it runs only once
 *   every live process was shipped with it.
 * A file without the line is `expand`: every migration before 0024 was written to be safe with
 * the release before it.
 */
export type MigrationPhase = 'expand' | 'contract';

export function migrationPhase(sql: string, file: string): MigrationPhase {
  const first = sql.split('\n', 1)[0];
  const m = /^--\s*phase:\s*(\S+)\s*$/i.exec(first);
  if (!m) {
    if (/^--\s*phase\b/i.test(first)) throw new Error(`migration ${file}: write its first line as "-- phase: expand" or "-- phase: contract"`);
    return 'expand';
  }
  const phase = m[1].toLowerCase();
  if (phase !== 'expand' && phase !== 'contract') throw new Error(`migration ${file}: phase "${m[1]}" is neither expand nor contract`);
  return phase;
}

/** A migration's schema version: the number its file name starts with. */
export function migrationVersion(file: string): number {
  const m = MIGRATION_FILE.exec(file);
  if (!m) throw new Error(`not a migration file name: ${file}`);
  return Number(m[1]);
}

/**
 * The schema version this code was shipped with: the number of the newest migration in its own
 * checkout. Processes register it (core/schema-clients.ts); a contract migration numbered N waits
 * until every live process registered N or more.
 */
export function shippedSchemaVersion(dir = MIGRATIONS_DIR): number {
  const files = readdirSync(dir).filter((f) => MIGRATION_FILE.test(f)).sort();
  return files.length ? migrationVersion(files[files.length - 1]) : 0;
}

/** A contract migration refused because older processes still run; `blockers` names them. */
export class ContractRefusedError extends Error {
  constructor(
    readonly migration: string,
    readonly blockers: SchemaClient[],
    staleSeconds: number,
  ) {
    const version = migrationVersion(migration);
    const who = blockers
      .map((c) => `${c.kind} (instance ${c.instance}, host ${c.host}, pid ${c.pid}) needs schema version ${c.needsVersion}, last checked in at ${c.seenAt.toISOString()}`)
      .join('; ');
    super(
      `migration ${migration} is a contract migration: it needs every running process at schema version ${version} or newer, ` +
        `but ${blockers.length === 1 ? 'an older process is' : `${blockers.length} older processes are`} still registered: ${who}. ` +
        `Stop or upgrade ${blockers.length === 1 ? 'it' : 'them'} (a clean shutdown deregisters; one that stopped checking in ` +
        `stops counting after ${staleSeconds} s, DOTGIT_SCHEMA_CLIENT_STALE_SECONDS), then migrate again. Migrations before it are applied.`,
    );
    this.name = 'ContractRefusedError';
  }
}

export interface MigrateOptions {
  /** A registered process not seen for this long no longer blocks a contract migration. Default 120. */
  staleSeconds?: number;
  /**
   * Stop before the first contract migration instead of running it (a rollout's pre-upgrade step:
   * Helm's expand hook). Default false: contracts run when nothing older is registered.
   */
  expandOnly?: boolean;
}

/**
 * Applies pending migrations in order, each in its own transaction. An advisory lock serialises
 * concurrent starters (several processes may start at once), so each file runs exactly once.
 * Expand migrations run freely; a contract migration first checks `schema_clients` and throws
 * ContractRefusedError (naming the older processes) while any live one was shipped before it;
 * the migrations before it stay applied and the ones after it wait, as order matters.
 */
export async function migrate(db: Db, dir = MIGRATIONS_DIR, opts: MigrateOptions = {}): Promise<string[]> {
  const staleSeconds = opts.staleSeconds ?? 120;
  const files = (await fs.readdir(dir)).filter((f) => MIGRATION_FILE.test(f)).sort();
  const client = await db.connect();
  const applied: string[] = [];
  try {
    await client.query('SELECT pg_advisory_lock(724001)');
    await client.query(
      'CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    const done = new Set((await client.query<{ name: string }>('SELECT name FROM schema_migrations')).rows.map((r) => r.name));
    for (const file of files) {
      if (done.has(file)) continue;
      const sql = await fs.readFile(path.join(dir, file), 'utf8');
      if (migrationPhase(sql, file) === 'contract') {
        if (opts.expandOnly) break;
        // Checked under the advisory lock; a process of an older release that starts after this
        // check and before the commit is the operator's to avoid (docs/migrations.md: deploy the
        // new release everywhere first).
        const blockers = await liveClientsOlderThan(client, migrationVersion(file), staleSeconds);
        if (blockers.length) throw new ContractRefusedError(file, blockers, staleSeconds);
      }
      try {
        await client.query('BEGIN');
        await client.query(sql);
        await client.query('INSERT INTO schema_migrations (name) VALUES ($1)', [file]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw new Error(`migration ${file} failed: ${(err as Error).message}`);
      }
      applied.push(file);
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock(724001)').catch(() => undefined);
    client.release();
  }
  return applied;
}
