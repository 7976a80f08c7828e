import pg from 'pg';
import { followPrimary, parseMultiHostUrl, primaryFollowingClient } from './db-leader';
import { withReplicaReads } from './db-replicas';

export type Db = pg.Pool;
export type DbClient = pg.PoolClient;
/** What store functions query through: the pool, or a transaction's client when a caller joins several stores in one transaction. */
export type Queryable = Pick<DbClient, 'query'>;
/** A row as a store returns it when it does not map it: columns by their SQL names. */
export type Row = pg.QueryResultRow;

/**
 * A connection pool. `max` defaults to 10 connections per process. A libpq-style URL with several
 * hosts (`h1:p1,h2:p2/db?target_session_attrs=read-write`, what `npm start -- --ha` hands out)
 * connects to whichever of them is the primary now (core/db-leader.ts); statements sent inside
 * `onReplicas` may go to the others, the standbys, when they are caught up (core/db-replicas.ts).
 */
export function createDb(databaseUrl: string, max = 10): Db {
  const multi = parseMultiHostUrl(databaseUrl);
  const pool = multi
    ? withReplicaReads(followPrimary(new pg.Pool({ connectionString: multi.singleHostUrl, max, Client: primaryFollowingClient(multi.hosts, multi.urlFor) })), multi.hosts, multi.urlFor, max)
    : new pg.Pool({ connectionString: databaseUrl, max });
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
