import pg from 'pg';
import { UnavailableError } from './errors';

/**
 * Connections that follow the primary (issue 13; docs/decisions/0021-postgres-ha.md). node-postgres
 * takes one host only, so the libpq multi-host form
 * `postgres://u:p@h1:p1,h2:p2,h3:p3/db?target_session_attrs=read-write` is done here: each new
 * connection goes to the host last found to be the primary, and checks that it still is
 * (`pg_is_in_recovery()`); when it is not, or does not answer, the next connection asks every host
 * again. Connections to a primary that dies or is demoted break, the pool drops them, and their
 * callers get an error that dbUnavailable() turns into a 503 with Retry-After.
 */

export interface HostPort {
  host: string;
  port: number;
}

/** Seconds a client is told to wait when the database is failing over: about one Patroni loop. */
export const FAILOVER_RETRY_AFTER_SECONDS = 2;

/**
 * How long a new connection or a retried statement waits for a primary. A planned switchover
 * leaves none for 1-3 s; a lost primary for up to Patroni's ttl (20 s), past which callers get 503.
 */
export const PRIMARY_WAIT_MS = 10_000;

/**
 * The hosts of a libpq-style URL with several of them (or with target_session_attrs=read-write),
 * and that URL with the first host alone for node-postgres to parse the rest from; undefined for a
 * plain one-host URL.
 */
export function parseMultiHostUrl(url: string): { hosts: HostPort[]; singleHostUrl: string; urlFor: (h: HostPort) => string } | undefined {
  const m = /^(postgres(?:ql)?:\/\/)([^@/?#]*@)?([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/.exec(url);
  if (!m) return undefined;
  const [, scheme, auth = '', hostList = '', dbPath = '', query = ''] = m;
  const params = new URLSearchParams(query.slice(1));
  const attrs = params.get('target_session_attrs');
  const list = hostList.split(',').filter(Boolean);
  if (list.length < 2 && attrs !== 'read-write') return undefined;
  if (attrs && attrs !== 'read-write' && attrs !== 'any') throw new Error(`DATABASE_URL: target_session_attrs=${attrs} is not supported (read-write or any)`);
  const hosts = list.map((h) => {
    const hm = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(h);
    if (!hm) throw new Error(`DATABASE_URL: bad host "${h}"`);
    return { host: hm[1]!.replace(/^\[|\]$/g, ''), port: hm[2] ? Number(hm[2]) : 5432 };
  });
  params.delete('target_session_attrs');
  const rest = params.toString();
  const urlFor = (h: HostPort) => `${scheme}${auth}${h.host.includes(':') ? `[${h.host}]` : h.host}:${h.port}${dbPath}${rest ? `?${rest}` : ''}`;
  return { hosts, singleHostUrl: urlFor(hosts[0] ?? { host: 'localhost', port: 5432 }), urlFor };
}

/** The user, password and database of a Postgres URL with one host or several (WHATWG URLs take one only). */
export function databaseCredentials(url: string): { user: string; password: string; database: string } {
  const m = /^postgres(?:ql)?:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?[^/?#]*(?:\/([^?#]*))?/.exec(url);
  if (!m) throw new Error('DATABASE_URL: not a postgres:// URL');
  return { user: decodeURIComponent(m[1] ?? ''), password: decodeURIComponent(m[2] ?? ''), database: decodeURIComponent(m[3] ?? '') };
}

/**
 * The URL of the server that is the primary now: a multi-host URL's primary alone (for tools that
 * must reach it, such as pg_basebackup and pg_switch_wal, whose answers a standby would not give);
 * a one-host URL as it is. UnavailableError when no host is the primary (a failover in progress).
 */
export async function primaryUrl(url: string): Promise<string> {
  const multi = parseMultiHostUrl(url);
  if (!multi) return url;
  return multi.urlFor(await findPrimary(multi.hosts, multi.urlFor, {}));
}

/**
 * Start-up check of a pool writes go through: a one-host URL that names a standby (a replica's
 * address where the primary's belongs) would fail every write with "read-only transaction". `what`
 * names the setting in the message. A multi-host pool passes: it connects to the primary only.
 */
export async function assertPrimary(pool: Pick<pg.Pool, 'query'>, what: string): Promise<void> {
  const { rows } = await pool.query<{ recovery: boolean }>('SELECT pg_is_in_recovery() AS recovery');
  if (rows[0]?.recovery) {
    throw new Error(`${what} is a standby (in recovery), so every write would fail: name its primary (the read-write endpoint), or list every member with ?target_session_attrs=read-write`);
  }
}

/**
 * A pg.Client class for pg.Pool's `Client` option that connects to the primary among `hosts`.
 * The primary is shared by every connection of the class (one pool), found again after a failure.
 */
export function primaryFollowingClient(hosts: HostPort[], urlFor: (h: HostPort) => string): typeof pg.Client {
  let primary: HostPort | undefined;
  let finding: Promise<HostPort> | undefined;
  const find = (config: pg.ClientConfig) =>
    (finding ??= findPrimary(hosts, urlFor, config).finally(() => {
      finding = undefined;
    }));

  return class PrimaryClient extends pg.Client {
    private readonly baseConfig: pg.ClientConfig;

    constructor(config?: string | pg.ClientConfig) {
      super(config);
      this.baseConfig = typeof config === 'string' ? { connectionString: config } : (config ?? {});
      // pg-pool listens for errors only while a client is idle: a checked-out client whose primary
      // goes away would emit an unhandled 'error' and end the process. Its queries get the error.
      this.on('error', () => undefined);
    }

    override connect(): Promise<pg.Client>;
    override connect(callback: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): void;
    override connect(callback?: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): Promise<pg.Client> | void {
      const done = this.connectToPrimary().then(() => this);
      if (!callback) return done;
      // pg-pool passes a callback and checks only its first argument.
      done.then(() => (callback as (err: Error | null) => void)(null), (err: Error) => (callback as (err: Error) => void)(err));
    }

    private async connectToPrimary(): Promise<void> {
      const target = primary ?? (primary = await find(this.baseConfig));
      const self = this as unknown as { host: string; port: number };
      self.host = target.host;
      self.port = target.port;
      try {
        await super.connect();
      } catch (err) {
        if (primary === target) primary = undefined;
        throw err;
      }
      const { rows } = await this.query<{ recovery: boolean }>('SELECT pg_is_in_recovery() AS recovery');
      if (rows[0]?.recovery) {
        if (primary === target) primary = undefined;
        await this.end().catch(() => undefined);
        throw new UnavailableError(`${target.host}:${target.port} is no longer the primary`, FAILOVER_RETRY_AFTER_SECONDS);
      }
    }
  };
}

/** Asks every host at once which is the primary (what libpq's target_session_attrs=read-write does). */
async function findPrimary(hosts: HostPort[], urlFor: (h: HostPort) => string, config: pg.ClientConfig): Promise<HostPort> {
  const answers = await Promise.all(
    hosts.map(async (h) => {
      // The URL's own host wins over `host` in node-postgres: each probe gets its host's URL.
      const client = new pg.Client({ ...config, connectionString: urlFor(h), connectionTimeoutMillis: 3000 });
      client.on('error', () => undefined);
      try {
        await client.connect();
        const { rows } = await client.query<{ recovery: boolean }>('SELECT pg_is_in_recovery() AS recovery');
        return rows[0]?.recovery === false ? h : undefined;
      } catch {
        return undefined;
      } finally {
        await client.end().catch(() => undefined);
      }
    }),
  );
  const found = answers.find((h) => h !== undefined);
  if (!found) throw new UnavailableError(`no primary among ${hosts.map((h) => `${h.host}:${h.port}`).join(', ')} (failing over?)`, FAILOVER_RETRY_AFTER_SECONDS);
  return found;
}

/**
 * A pool over a multi-host URL rides out a switchover: getting a connection waits (up to
 * PRIMARY_WAIT_MS) for a primary instead of failing, and a single statement (`pool.query`) that the
 * server provably did not run — its connection never opened, or the server answered it with
 * admin_shutdown, cannot_connect_now or read_only — is sent again to the new primary. A statement
 * whose connection broke without an answer may have committed: it is not repeated (503 instead),
 * nor is anything inside a transaction (the caller's inTransaction fails as a whole).
 */
export function followPrimary(pool: pg.Pool): pg.Pool {
  const connect = pool.connect.bind(pool) as () => Promise<pg.PoolClient>;
  const query = pool.query.bind(pool) as (...args: unknown[]) => Promise<unknown>;
  const withRetry = async <T>(run: () => Promise<T>, retryable: (err: unknown) => boolean): Promise<T> => {
    const deadline = Date.now() + PRIMARY_WAIT_MS;
    for (let delay = 100; ; delay = Math.min(delay * 2, 1000)) {
      try {
        return await run();
      } catch (err) {
        if (!retryable(err) || Date.now() + delay > deadline) throw err;
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  };
  pool.connect = ((callback?: unknown) => {
    if (typeof callback === 'function') return (connect as (cb: unknown) => void)(callback);
    return withRetry(connect, notConnected);
  }) as typeof pool.connect;
  pool.query = ((...args: unknown[]) => {
    if (typeof args[args.length - 1] === 'function') return query(...args);
    return withRetry(() => query(...args), (err) => notConnected(err) || NOT_RUN_CODES.has((err as { code?: string }).code ?? ''));
  }) as typeof pool.query;
  return pool;
}

/** The error came from opening a connection: nothing was sent. */
function notConnected(err: unknown): boolean {
  if (err instanceof UnavailableError) return true;
  const code = (err as { code?: unknown }).code;
  return code === 'ECONNREFUSED' || code === '57P03' || /timeout exceeded when trying to connect|connection error and is not queryable/i.test(String((err as Error).message));
}

// The server answered these without running the statement: shutting down (before the statement
// committed: the error is the answer), starting up, or a read-only standby.
const NOT_RUN_CODES = new Set(['57P01', '57P02', '57P03', '25006']);

// SQLSTATEs of a server going away or refusing writes: admin/crash shutdown, starting up,
// read-only (a demoted primary), and class 08 (connection exceptions).
const FAILOVER_CODES = new Set(['57P01', '57P02', '57P03', '25006', '08000', '08001', '08003', '08004', '08006']);
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH']);
const LOST_CONNECTION = /Connection terminated|connection error and is not queryable|timeout exceeded when trying to connect|Client was closed and is not queryable/i;

/**
 * The database is away (restarting, failing over, a demoted primary refusing writes): the error as
 * a retryable UnavailableError (503 + Retry-After), or undefined for any other error. A statement
 * cut off this way did not take effect, except a COMMIT whose answer was lost: that one may have.
 */
export function dbUnavailable(err: unknown): UnavailableError | undefined {
  if (err instanceof UnavailableError) return err;
  const e = err as { code?: unknown; message?: unknown } | undefined;
  const code = typeof e?.code === 'string' ? e.code : '';
  const message = typeof e?.message === 'string' ? e.message : '';
  if (FAILOVER_CODES.has(code) || NETWORK_CODES.has(code) || LOST_CONNECTION.test(message)) {
    return new UnavailableError(`the database is unavailable, retry shortly (${message || code})`, FAILOVER_RETRY_AFTER_SECONDS);
  }
  return undefined;
}
