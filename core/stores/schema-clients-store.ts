import type { Queryable } from '../db';

/**
 * `schema_clients` (migration 0024): the processes connected to this database and the schema
 * version each was shipped with. core/schema-clients.ts registers a process; core/migrate.ts asks
 * which live ones would be broken by a `contract` migration.
 */

export interface SchemaClient {
  instance: string;
  kind: string;
  host: string;
  pid: number;
  needsVersion: number;
  seenAt: Date;
}

/** Registers (or refreshes) one process; `seen_at` is the database's clock, shared by every host. */
export async function upsertSchemaClient(q: Queryable, c: Omit<SchemaClient, 'seenAt'>): Promise<void> {
  await q.query(
    `INSERT INTO schema_clients (instance, kind, host, pid, needs_version) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (instance) DO UPDATE SET kind = EXCLUDED.kind, host = EXCLUDED.host, pid = EXCLUDED.pid,
       needs_version = EXCLUDED.needs_version, seen_at = now()`,
    [c.instance, c.kind, c.host, c.pid, c.needsVersion],
  );
}

/** Removes a process's row (its clean shutdown). */
export async function deleteSchemaClient(q: Queryable, instance: string): Promise<void> {
  await q.query('DELETE FROM schema_clients WHERE instance = $1', [instance]);
}

/**
 * Live processes (seen within `staleSeconds`) shipped with a schema older than `version`, oldest
 * first. An absent table (a database before migration 0024) has none.
 */
export async function liveClientsOlderThan(q: Queryable, version: number, staleSeconds: number): Promise<SchemaClient[]> {
  const exists = await q.query<{ t: string | null }>("SELECT to_regclass('schema_clients')::text AS t");
  if (!exists.rows[0].t) return [];
  const { rows } = await q.query<{ instance: string; kind: string; host: string; pid: number; needs_version: number; seen_at: Date }>(
    `SELECT instance, kind, host, pid, needs_version, seen_at FROM schema_clients
     WHERE needs_version < $1 AND seen_at > now() - make_interval(secs => $2)
     ORDER BY needs_version, instance`,
    [version, staleSeconds],
  );
  return rows.map((r) => ({ instance: r.instance, kind: r.kind, host: r.host, pid: r.pid, needsVersion: r.needs_version, seenAt: r.seen_at }));
}
