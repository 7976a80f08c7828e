import { AsyncLocalStorage } from 'node:async_hooks';
import pg from 'pg';
import client from 'prom-client';
import type { HostPort } from './db-leader';

/**
 * Reads on replicas (issue 13 item 3; ADR 0027). A pool made by createDb over a multi-host URL
 * knows the other hosts as standbys. A statement sent inside `onReplicas(lastWriteAt, fn)` (the api
 * wraps its read-heavy routes in it) goes to a standby that is caught up enough, else to the
 * primary; everything else, and every transaction (`connect()`), goes to the primary as before.
 *
 * How far behind a standby is: every POLL_MS the primary's WAL position is sampled (the time is
 * taken before asking), then each standby's replay position. A standby has replayed everything
 * committed before sample time t once its replay LSN has reached the sample's LSN; `caughtUpTo` is
 * the latest such t. Lag in seconds is now − caughtUpTo, on our own clock only.
 *
 * - A standby whose lag exceeds the bound (DOTGIT_DB_REPLICA_MAX_LAG_SECONDS) or that does not
 *   answer gets no reads until it catches up.
 * - Read-your-writes: a caller whose last write ended at `lastWriteAt` (the api's per-principal
 *   mark) is served only by a standby with caughtUpTo > lastWriteAt, which provably holds that
 *   commit; a write still in flight (`Infinity`) or no such standby: the primary.
 */

/** How often standbys' positions are sampled. */
export const POLL_MS = 500;

/** Settings of the replica reads of this process (the api sets them from its config before it makes pools). */
export const replicaReads = {
  /** A standby further behind than this gets no reads; 0: every read goes to the primary. */
  maxLagSeconds: 5,
};

const readScope = new AsyncLocalStorage<{ lastWriteAt: number | undefined }>();

/**
 * Runs `fn` with its statements (outside transactions) allowed on a standby that holds every write
 * of the caller: one whose replay covers `lastWriteAt` (epoch ms; undefined: the caller wrote
 * nothing lately; Infinity: a write of theirs is in flight, so the primary).
 */
export function onReplicas<T>(lastWriteAt: number | undefined, fn: () => T): T {
  return readScope.run({ lastWriteAt }, fn);
}

export interface ReplicaState {
  /** `host:port` of the standby. */
  name: string;
  /** Bytes of WAL the primary has that the standby has not replayed (null: unknown). */
  lagBytes: number | null;
  /** Seconds since the primary was where the standby's replay is (null: unknown, e.g. not answering). */
  lagSeconds: number | null;
  /** Gets reads now. */
  inReads: boolean;
  error?: string;
}

export interface DatabaseState {
  /** `host:port` of the primary, if known. */
  primary: string | undefined;
  replicas: ReplicaState[];
}

const lagBytesGauge = new client.Gauge({ name: 'dotgit_db_replica_lag_bytes', help: 'WAL bytes the primary has that a Postgres standby has not replayed yet', labelNames: ['replica'] });
const lagSecondsGauge = new client.Gauge({ name: 'dotgit_db_replica_lag_seconds', help: 'Seconds a Postgres standby is behind the primary (since the primary was where its replay is)', labelNames: ['replica'] });
const inReadsGauge = new client.Gauge({ name: 'dotgit_db_replica_in_reads', help: '1 while a Postgres standby is caught up enough to serve reads, 0 while it is taken out', labelNames: ['replica'] });
const readsCounter = new client.Counter({ name: 'dotgit_db_reads_total', help: 'Statements sent on read paths, by where they went: a standby (host:port) or primary', labelNames: ['target'] });

interface Standby {
  name: string;
  pool: pg.Pool;
  replayLsn: bigint | undefined;
  inRecovery: boolean;
  caughtUpTo: number | undefined;
  lagBytes: number | null;
  error?: string;
}

/** `X/Y` (hex halves) as one number. */
export function lsnValue(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
}

/** The standbys of one multi-host pool, watched while anyone reads through them. */
class ReplicaSet {
  private readonly standbys: Standby[];
  private samples: Array<{ at: number; lsn: bigint }> = [];
  private primaryName: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private next = 0;

  constructor(
    hosts: HostPort[],
    urlFor: (h: HostPort) => string,
    max: number,
    private readonly primaryQuery: (sql: string) => Promise<pg.QueryResult>,
  ) {
    this.standbys = hosts.map((h) => {
      const pool = new pg.Pool({ connectionString: urlFor(h), max, connectionTimeoutMillis: 2000 });
      pool.on('error', () => undefined);
      return { name: `${h.host}:${h.port}`, pool, replayLsn: undefined, inRecovery: false, caughtUpTo: undefined, lagBytes: null };
    });
  }

  /** Starts sampling on first use: processes that never read on replicas never poll. */
  private ensureStarted(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.poll(), POLL_MS);
    this.timer.unref();
    void this.poll();
  }

  poll(): Promise<void> {
    return (this.polling ??= this.sample().finally(() => (this.polling = undefined)));
  }

  private async sample(): Promise<void> {
    const at = Date.now();
    const current = await this.primaryQuery('SELECT pg_current_wal_lsn()::text AS lsn, inet_server_port() AS port').catch(() => undefined);
    const lsn = current ? lsnValue(String(current.rows[0].lsn)) : undefined;
    if (lsn !== undefined) {
      this.samples.push({ at, lsn });
      const keep = at - Math.max(replicaReads.maxLagSeconds * 2000, 10_000);
      while (this.samples.length > 1 && this.samples[0]!.at < keep) this.samples.shift();
    }
    const now = Date.now();
    await Promise.all(
      this.standbys.map(async (s) => {
        try {
          const { rows } = await s.pool.query<{ r: boolean; lsn: string | null }>('SELECT pg_is_in_recovery() AS r, pg_last_wal_replay_lsn()::text AS lsn');
          s.inRecovery = rows[0]!.r;
          s.error = undefined;
          if (!s.inRecovery) {
            // The primary itself (after a failover the roles move): no reads as a standby.
            this.primaryName = s.name;
            s.replayLsn = undefined;
            s.caughtUpTo = undefined;
            s.lagBytes = null;
            return;
          }
          s.replayLsn = rows[0]!.lsn ? lsnValue(rows[0]!.lsn) : undefined;
          const covered = s.replayLsn === undefined ? [] : this.samples.filter((x) => x.lsn <= s.replayLsn!);
          s.caughtUpTo = covered.length ? covered[covered.length - 1]!.at : undefined;
          s.lagBytes = lsn !== undefined && s.replayLsn !== undefined ? Number(lsn > s.replayLsn ? lsn - s.replayLsn : 0n) : null;
        } catch (err) {
          s.error = (err as Error).message;
          s.inRecovery = false;
          s.caughtUpTo = undefined;
          s.lagBytes = null;
        }
      }),
    );
    for (const st of this.state(now).replicas) {
      lagBytesGauge.set({ replica: st.name }, st.lagBytes ?? -1);
      lagSecondsGauge.set({ replica: st.name }, st.lagSeconds ?? -1);
      inReadsGauge.set({ replica: st.name }, st.inReads ? 1 : 0);
    }
  }

  private eligible(s: Standby, now: number): boolean {
    return replicaReads.maxLagSeconds > 0 && s.inRecovery && s.caughtUpTo !== undefined && now - s.caughtUpTo <= replicaReads.maxLagSeconds * 1000;
  }

  /** A standby for a reader whose last write ended at `lastWriteAt`, round robin; undefined: the primary. */
  pick(lastWriteAt: number | undefined): Standby | undefined {
    this.ensureStarted();
    const now = Date.now();
    const ok = this.standbys.filter((s) => this.eligible(s, now) && (lastWriteAt === undefined || s.caughtUpTo! > lastWriteAt));
    if (!ok.length) return undefined;
    return ok[this.next++ % ok.length];
  }

  state(now = Date.now()): DatabaseState {
    this.ensureStarted();
    return {
      primary: this.primaryName,
      replicas: this.standbys
        .filter((s) => s.name !== this.primaryName)
        .map((s) => ({
          name: s.name,
          lagBytes: s.lagBytes,
          lagSeconds: s.caughtUpTo === undefined ? null : Math.max(0, (now - s.caughtUpTo) / 1000),
          inReads: this.eligible(s, now),
          ...(s.error ? { error: s.error } : {}),
        })),
    };
  }

  async end(): Promise<void> {
    clearInterval(this.timer);
    await this.polling?.catch(() => undefined);
    await Promise.allSettled(this.standbys.map((s) => s.pool.end()));
  }
}

const sets = new WeakMap<pg.Pool, ReplicaSet>();

// The server refused the statement for being on a standby (a write on a read path), or the standby
// went away before running it: the primary answers instead.
const TRY_PRIMARY = new Set(['25006', '57P01', '57P02', '57P03', 'ECONNREFUSED']);

/**
 * Lets `pool` (a primary-following pool over `hosts`) send statements made inside onReplicas to
 * its standbys. Called by createDb; the pool is returned for chaining.
 */
export function withReplicaReads(pool: pg.Pool, hosts: HostPort[], urlFor: (h: HostPort) => string, max: number): pg.Pool {
  const primaryQuery = pool.query.bind(pool) as (...args: unknown[]) => Promise<pg.QueryResult>;
  const set = new ReplicaSet(hosts, urlFor, max, (sql) => primaryQuery(sql));
  sets.set(pool, set);
  pool.query = ((...args: unknown[]) => {
    const scope = readScope.getStore();
    if (!scope || typeof args[args.length - 1] === 'function') return primaryQuery(...args);
    const standby = set.pick(scope.lastWriteAt);
    if (!standby) {
      readsCounter.inc({ target: 'primary' });
      return primaryQuery(...args);
    }
    readsCounter.inc({ target: standby.name });
    return (standby.pool.query as (...a: unknown[]) => Promise<pg.QueryResult>)(...args).catch((err: { code?: string }) => {
      if (!TRY_PRIMARY.has(err.code ?? '')) throw err;
      return primaryQuery(...args);
    });
  }) as typeof pool.query;
  const end = pool.end.bind(pool) as () => Promise<void>;
  pool.end = (async () => {
    await set.end();
    await end();
  }) as typeof pool.end;
  return pool;
}

/** Whether `pool` has standbys to read from (made over a multi-host URL). */
export function hasReplicas(pool: pg.Pool): boolean {
  return sets.has(pool);
}

/** The primary and each standby's lag of a pool made over a multi-host URL (undefined for one host). */
export async function databaseState(pool: pg.Pool): Promise<DatabaseState | undefined> {
  const set = sets.get(pool);
  if (!set) return undefined;
  await set.poll();
  return set.state();
}
