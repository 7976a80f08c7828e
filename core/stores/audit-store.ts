import { createHash } from 'node:crypto';
import { canonicalize } from 'json-canonicalize';
import pg from 'pg';
import type { Db, DbClient } from '../db';
import { inTransaction } from '../db';
import { SHARD_COUNT, shardOf } from '../shards';
import { inShardScope, type ShardScope } from './shard-scope';

/**
 * The audit log's SQL (table `audit_log`, migrations 0001 and 0019): append-only, and every row a
 * link of its shard's hash chain (docs/decisions/0017-audit-chain.md).
 *
 * A link's hash is the lowercase hex SHA-256 of the UTF-8 bytes of the RFC 8785 (JCS) canonical
 * JSON of
 *   {"v":1, "shard", "seq", "prev", "tenantId", "actor", "action", "target", "detail", "requestId", "at"}
 * where `prev` is the previous link's hash (null for seq 1), `detail` the JSON object as stored,
 * `requestId` and `tenantId` null when absent, and `at` the row's time as ISO 8601 in UTC with
 * milliseconds. The row id is not covered: it only orders listings.
 */

export interface AuditEntry {
  tenantId?: number | null;
  actor: string;
  action: string;
  target: string;
  detail?: Record<string, unknown>;
  requestId?: string | null;
}

/** What a link's hash covers. */
export interface AuditLink {
  shard: number;
  seq: number;
  prev: string | null;
  tenantId: number | null;
  actor: string;
  action: string;
  target: string;
  detail: Record<string, unknown>;
  requestId: string | null;
  at: string;
}

export interface AuditEvent extends AuditLink {
  id: number;
  /** The tenant's name (null for platform events or a tenant since removed). */
  tenant: string | null;
  hash: string;
}

export interface BrokenLink {
  shard: number;
  /** The position where the chain breaks (for a deleted row: the missing seq). */
  seq: number;
  /** The row found there, if any. */
  id: number | null;
  reason: string;
}

export interface ShardVerification {
  shard: number;
  checked: number;
  /** The last link: record it elsewhere to detect later truncation of the tail. */
  head: { seq: number; hash: string } | null;
  firstBroken?: BrokenLink;
}

export interface AuditVerification {
  ok: boolean;
  /** Links checked, over every shard walked. */
  checked: number;
  /** Rows from before the chains began (migration 0019), not covered. */
  unchained: number;
  firstBroken?: BrokenLink;
  shards: ShardVerification[];
}

/** Advisory-lock space of the chains (two-key form: `pg_advisory_xact_lock(space, shard)`). */
const CHAIN_LOCK_SPACE = 724019;
/** Rows read per query while verifying. */
const VERIFY_PAGE = 1000;

/** The shard whose chain an entry joins: its tenant's, shard 0 for platform events without one. */
export function auditShardOf(tenantId: number | null | undefined): number {
  return tenantId === null || tenantId === undefined ? 0 : shardOf(tenantId);
}

/** The hash of a link (see the module comment). */
export function auditHash(link: AuditLink): string {
  const doc = { v: 1, ...link };
  return createHash('sha256').update(canonicalize(doc), 'utf8').digest('hex');
}

/**
 * Appends one entry to its shard's chain. Given a transaction's client, the entry lands with the
 * caller's change or not at all; given the pool, it takes a transaction of its own.
 *
 * Appends to one chain serialise on a transaction-scoped advisory lock on the shard, held until the
 * caller commits: the head is read by the statement after the lock is granted, which under READ
 * COMMITTED (the default everywhere here) sees the link the previous holder committed. The unique
 * index on (shard, seq) is the backstop: a caller in REPEATABLE READ would fail, never fork the chain.
 */
export async function appendAudit(q: Db | DbClient, e: AuditEntry): Promise<AuditEvent> {
  if (q instanceof pg.Pool) return inTransaction(q, (c) => appendAudit(c, e));
  const shard = auditShardOf(e.tenantId);
  await q.query('SELECT pg_advisory_xact_lock($1, $2)', [CHAIN_LOCK_SPACE, shard]);
  const head = await q.query<{ seq: string | null; hash: string | null; at: Date }>(
    `SELECT h.seq, h.hash, date_trunc('milliseconds', clock_timestamp()) AS at
       FROM (SELECT 1) one
       LEFT JOIN LATERAL (SELECT seq, hash FROM audit_log WHERE shard = $1 AND seq IS NOT NULL ORDER BY seq DESC LIMIT 1) h ON true`,
    [shard],
  );
  const { seq, hash: prev, at } = head.rows[0];
  const link: AuditLink = {
    shard,
    seq: seq === null ? 1 : Number(seq) + 1,
    prev,
    tenantId: e.tenantId ?? null,
    actor: e.actor,
    action: e.action,
    target: e.target,
    // As jsonb will give it back: undefined members dropped, dates as strings.
    detail: JSON.parse(JSON.stringify(e.detail ?? {})) as Record<string, unknown>,
    requestId: e.requestId ?? null,
    at: at.toISOString(),
  };
  const hash = auditHash(link);
  const r = await q.query<{ id: string }>(
    `INSERT INTO audit_log (tenant_id, actor, action, target, detail, request_id, at, seq, prev_hash, hash)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id`,
    [link.tenantId, link.actor, link.action, link.target, JSON.stringify(link.detail), link.requestId, link.at, link.seq, link.prev, hash],
  );
  return { ...link, id: Number(r.rows[0].id), tenant: null, hash };
}

interface AuditRow {
  id: string;
  tenant_id: string | null;
  tenant?: string | null;
  shard: number;
  seq: string | null;
  prev_hash: string | null;
  hash: string | null;
  actor: string;
  action: string;
  target: string;
  detail: Record<string, unknown>;
  request_id: string | null;
  at: Date;
}

function linkOf(r: AuditRow): AuditLink {
  return {
    shard: Number(r.shard),
    seq: Number(r.seq),
    prev: r.prev_hash,
    tenantId: r.tenant_id === null ? null : Number(r.tenant_id),
    actor: r.actor,
    action: r.action,
    target: r.target,
    detail: r.detail,
    requestId: r.request_id,
    at: r.at.toISOString(),
  };
}

const COLUMNS = 'a.id, a.tenant_id, a.shard, a.seq, a.prev_hash, a.hash, a.actor, a.action, a.target, a.detail, a.request_id, a.at';

/**
 * Events oldest first, after the event id `after` (keyset pagination), at most `limit`; one
 * tenant's, or every tenant's when `tenantId` is undefined.
 */
export async function listAuditEvents(db: Db, o: { tenantId?: number; after?: number; limit: number; shards?: ShardScope }): Promise<AuditEvent[]> {
  const r = await db.query<AuditRow>(
    `SELECT ${COLUMNS}, t.name AS tenant FROM audit_log a LEFT JOIN tenants t ON t.id = a.tenant_id
      WHERE ($1::bigint IS NULL OR a.tenant_id = $1) AND a.id > $2 AND ${inShardScope('$4', 'a.shard')} ORDER BY a.id LIMIT $3`,
    [o.tenantId ?? null, o.after ?? 0, o.limit, o.shards ?? null],
  );
  return r.rows.map((row) => ({
    ...linkOf(row),
    seq: row.seq === null ? 0 : Number(row.seq),
    id: Number(row.id),
    tenant: row.tenant ?? null,
    hash: row.hash ?? '',
  }));
}

/** Walks one shard's chain from seq 1 to its head; names the first broken link. */
async function verifyShard(db: Db, shard: number): Promise<ShardVerification & { unchained: number }> {
  const out: ShardVerification & { unchained: number } = { shard, checked: 0, head: null, unchained: 0 };
  const broken = (b: Omit<BrokenLink, 'shard'>) => {
    out.firstBroken ??= { shard, ...b };
  };
  let prev: string | null = null;
  let expected = 1;
  let cursor: [number, number] = [0, 0];
  let firstId: number | undefined;
  for (;;) {
    const page = await db.query<AuditRow>(
      `SELECT ${COLUMNS} FROM audit_log a WHERE a.shard = $1 AND a.seq IS NOT NULL AND (a.seq, a.id) > ($2, $3) ORDER BY a.seq, a.id LIMIT $4`,
      [shard, cursor[0], cursor[1], VERIFY_PAGE],
    );
    for (const row of page.rows) {
      const seq = Number(row.seq);
      const id = Number(row.id);
      firstId ??= id;
      out.checked += 1;
      if (seq > expected) broken({ seq: expected, id, reason: `seq ${expected}${seq - 1 > expected ? `..${seq - 1}` : ''} missing: rows deleted` });
      else if (seq < expected) broken({ seq, id, reason: `seq ${seq} appears more than once: a row inserted` });
      else if (row.hash !== auditHash(linkOf(row))) broken({ seq, id, reason: 'the row does not match its hash: altered (or moved from another position)' });
      else if (row.prev_hash !== prev) broken({ seq, id, reason: `prev_hash is not the hash of seq ${seq - 1}: rows reordered, replaced or removed before it` });
      prev = row.hash;
      expected = seq + 1;
      out.head = { seq, hash: row.hash ?? '' };
      cursor = [seq, id];
    }
    if (page.rows.length < VERIFY_PAGE) break;
  }
  // Rows without a seq are the ones from before the chains began; one written after them was
  // taken out of its chain by hand.
  const loose = await db.query<{ before: string; after: string; first_after: string | null }>(
    `SELECT count(*) FILTER (WHERE $2::bigint IS NULL OR id < $2) AS before,
            count(*) FILTER (WHERE id > $2) AS after, min(id) FILTER (WHERE id > $2) AS first_after
       FROM audit_log WHERE shard = $1 AND seq IS NULL`,
    [shard, firstId ?? null],
  );
  out.unchained = Number(loose.rows[0].before);
  if (Number(loose.rows[0].after) > 0) broken({ seq: 0, id: Number(loose.rows[0].first_after), reason: 'a row written after the chain began has no seq: taken out of its chain' });
  return out;
}

/**
 * Walks the chains of `shards` (default all), in parallel; `firstBroken` is that of the lowest shard
 * that has one. `db` is the database, or the database of each shard (ADR 0025: a chain lives with
 * its shard's rows).
 */
export async function verifyAuditChains(db: Db | ((shard: number) => Db), shards: number[] = [...Array(SHARD_COUNT).keys()]): Promise<AuditVerification> {
  const dbOf = typeof db === 'function' ? db : () => db;
  const results = await Promise.all(shards.map((s) => verifyShard(dbOf(s), s)));
  const firstBroken = results.find((r) => r.firstBroken)?.firstBroken;
  return {
    ok: !firstBroken,
    checked: results.reduce((n, r) => n + r.checked, 0),
    unchained: results.reduce((n, r) => n + r.unchained, 0),
    ...(firstBroken ? { firstBroken } : {}),
    shards: results.map(({ unchained: _unchained, ...s }) => s),
  };
}

/** A tenant's id by name, for the audit listing's `tenant=` (undefined when there is none). */
export async function findTenantIdByName(db: Db, name: string): Promise<number | undefined> {
  const r = await db.query<{ id: string }>('SELECT id FROM tenants WHERE name = $1', [name]);
  return r.rows[0] ? Number(r.rows[0].id) : undefined;
}

/**
 * Who pushed the push that started run `runId` (its `repo.push` entry lists the run), looked for
 * from 5 minutes before the run's row was made; undefined when no entry says.
 */
export async function findRunPusher(db: Db, tenantId: number, runId: string, runCreatedAt: Date): Promise<string | undefined> {
  const r = await db.query<{ actor: string }>(
    `SELECT actor FROM audit_log WHERE tenant_id = $1 AND action = 'repo.push' AND at >= $3::timestamptz - interval '5 minutes' AND detail->'runs' ? $2 LIMIT 1`,
    [tenantId, runId, runCreatedAt],
  );
  return r.rows[0]?.actor;
}
