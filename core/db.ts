import pg from 'pg';

export type Db = pg.Pool;
export type DbClient = pg.PoolClient;
/** What store functions query through: the pool, or a transaction's client when a caller joins several stores in one transaction. */
export type Queryable = Pick<DbClient, 'query'>;
/** A row as a store returns it when it does not map it: columns by their SQL names. */
export type Row = pg.QueryResultRow;

/** A connection pool. `max` defaults to 10 connections per process. */
export function createDb(databaseUrl: string, max = 10): Db {
  const pool = new pg.Pool({ connectionString: databaseUrl, max });
  // An idle client that loses its connection must not crash the process; the next query reconnects.
  pool.on('error', () => undefined);
  return pool;
}

/** Runs `fn` in one transaction: commit on success, rollback on any error. */
export async function inTransaction<T>(db: Db, fn: (client: DbClient) => Promise<T>): Promise<T> {
  const client = await db.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
