import type { Queryable } from '../db';

/** Statements about the database server itself rather than an aggregate: health and its clock. */

/** A round trip to the database (health checks). */
export async function pingDatabase(q: Queryable): Promise<void> {
  await q.query('SELECT 1');
}

/** The database's current time (a common clock for every instance). */
export async function databaseNow(q: Queryable): Promise<Date> {
  return (await q.query<{ now: Date }>('SELECT now()')).rows[0].now;
}

/** The names of the migrations applied to this database. */
export async function appliedMigrationNames(q: Queryable): Promise<string[]> {
  return (await q.query<{ name: string }>('SELECT name FROM schema_migrations')).rows.map((x) => x.name);
}
