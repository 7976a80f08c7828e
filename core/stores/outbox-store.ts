import type { Queryable } from '../db';
import { deleteBatch } from './prune';
import { inShardScope, type ShardScope } from './shard-scope';

/**
 * The transactional outboxes' SQL (`push_outbox`, `webhook_outbox`, `replication_outbox`,
 * `run_request_outbox`): rows are written in the transaction of what caused them and handed on by a
 * relay, which claims due rows with SKIP LOCKED and stamps each one (`started_at`) once it is handed
 * on or failed for good. Each process drains the outboxes it writes (ADR 0024).
 */

/** Outbox tables (migrations/): a row is handed on (or failed for good) once `started_at` is stamped. */
export const OUTBOX_TABLES = ['push_outbox', 'webhook_outbox', 'replication_outbox', 'run_request_outbox'] as const;
export type OutboxTable = (typeof OUTBOX_TABLES)[number];

/**
 * The outboxes of pipeline starts: pushes' (and scheduled runs', written by the worker's schedule
 * activity), drained by the git-server; and runs started through the api, drained by the api.
 */
export const PIPELINE_START_OUTBOXES = ['push_outbox', 'run_request_outbox'] as const;
export type PipelineStartOutbox = (typeof PIPELINE_START_OUTBOXES)[number];

export interface OutboxRow {
  tenant_id: string;
  id: string;
  attempts: number;
  payload: unknown;
  created_at: Date;
  [column: string]: unknown;
}

/** A pipeline start for the relay (`payload`: the PipelineInput; `traceparent`: the trace the start continues). */
export async function enqueuePipelineStart(q: Queryable, tenantId: number, runId: string, payload: unknown, traceparent: string | null = null): Promise<void> {
  await q.query(`INSERT INTO push_outbox (tenant_id, run_id, payload, traceparent) VALUES ($1, $2, $3, $4)`, [tenantId, runId, JSON.stringify(payload), traceparent]);
}

/** A pipeline start of a run started through the api, for the api's relay (payload and trace as above). */
export async function enqueueRunRequest(q: Queryable, tenantId: number, runId: string, payload: unknown, traceparent: string | null = null): Promise<void> {
  await q.query(`INSERT INTO run_request_outbox (tenant_id, run_id, payload, traceparent) VALUES ($1, $2, $3, $4)`, [tenantId, runId, JSON.stringify(payload), traceparent]);
}

/**
 * Whether a run's pipeline start waits in an outbox, not yet handed on. Read only: a cancel reads it
 * holding the run row's lock, which the relay takes before it starts the workflow (pipeline-starts).
 */
export async function hasPendingPipelineStart(q: Queryable, tenantId: number | string, runId: string): Promise<boolean> {
  const r = await q.query(
    `SELECT 1 FROM push_outbox WHERE tenant_id = $1 AND run_id = $2 AND started_at IS NULL
     UNION ALL SELECT 1 FROM run_request_outbox WHERE tenant_id = $1 AND run_id = $2 AND started_at IS NULL`,
    [tenantId, runId],
  );
  return r.rows.length > 0;
}

/** A push's webhook dispatch, written only when one of the repository's webhooks wants `push` events (or all: `*`). */
export async function enqueuePushWebhookDispatch(q: Queryable, tenantId: number, repoId: number, workflowId: string, payload: unknown): Promise<void> {
  await q.query(
    `INSERT INTO webhook_outbox (tenant_id, workflow_id, payload)
     SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM webhooks WHERE tenant_id = $1 AND repo_id = $4 AND (events @> ARRAY['push']::text[] OR events @> ARRAY['*']::text[]))`,
    [tenantId, workflowId, JSON.stringify(payload), repoId],
  );
}

/** A replication of a repository for the relay (`payload`: the RepoTarget). */
export async function enqueueReplication(q: Queryable, tenantId: number, repoId: number, payload: unknown): Promise<void> {
  await q.query(`INSERT INTO replication_outbox (tenant_id, repo_id, payload) VALUES ($1, $2, $3)`, [tenantId, repoId, JSON.stringify(payload)]);
}

/*
 * The functions below take the outbox table's name (one of OUTBOX_TABLES, or a test's own copy of
 * one): code passes it, never a request.
 */

/** Up to `batch` due, unstamped rows, locked for this transaction (rows another relay holds are skipped). */
export async function claimDueOutboxRows(q: Queryable, table: string, batch: number): Promise<OutboxRow[]> {
  // Not the rows of a shard fenced here (ADR 0026): their stamps would be refused, and once the
  // move switched, the shard's new database relays them. The fence check runs once when none is set.
  const rows = await q.query<OutboxRow>(
    `SELECT * FROM ${table} WHERE started_at IS NULL AND next_attempt_at <= now()
        AND (NOT EXISTS (SELECT 1 FROM shard_fences WHERE state = 'fenced')
             OR dotgit_shard_of(tenant_id) NOT IN (SELECT shard FROM shard_fences WHERE state = 'fenced'))
      ORDER BY next_attempt_at, id LIMIT ${Number(batch)} FOR UPDATE SKIP LOCKED`,
  );
  return rows.rows;
}

/**
 * Stamps a row as handed on (`error` null) or failed for good (`error`: why). Answers the seconds
 * from the row's creation to now by the database's clock (the relay latency; ADR 0028).
 */
export async function stampOutboxRow(q: Queryable, table: string, row: OutboxRow, error: string | null): Promise<number> {
  const r = await q.query<{ seconds: number }>(
    `UPDATE ${table} SET started_at = now(), attempts = attempts + 1, last_error = $3 WHERE tenant_id = $1 AND id = $2
     RETURNING EXTRACT(EPOCH FROM clock_timestamp() - created_at)::float8 AS seconds`,
    [row.tenant_id, row.id, error],
  );
  return Number(r.rows[0]?.seconds ?? 0);
}

/** An outbox's backlog: rows not yet handed on, and the age in seconds of the oldest (0 when none). */
export async function outboxBacklog(q: Queryable, table: OutboxTable): Promise<{ pending: number; oldestSeconds: number }> {
  const r = await q.query<{ pending: string; oldest: number | null }>(
    `SELECT count(*) AS pending, EXTRACT(EPOCH FROM clock_timestamp() - min(created_at))::float8 AS oldest FROM ${table} WHERE started_at IS NULL`,
  );
  return { pending: Number(r.rows[0]?.pending ?? 0), oldestSeconds: Math.max(0, Number(r.rows[0]?.oldest ?? 0)) };
}

/** A row that failed for now: due again after `delaySeconds`. */
export async function retryOutboxRowLater(q: Queryable, table: string, row: OutboxRow, error: string, delaySeconds: number): Promise<void> {
  await q.query(`UPDATE ${table} SET attempts = attempts + 1, last_error = $3, next_attempt_at = now() + make_interval(secs => $4) WHERE tenant_id = $1 AND id = $2`, [
    row.tenant_id,
    row.id,
    error,
    delaySeconds,
  ]);
}

/** Deletes up to `batch` rows of an outbox handed on more than `olderThanSeconds` ago (pending rows stay); answers how many. */
export async function deleteHandedOnOutboxRows(q: Queryable, table: OutboxTable, olderThanSeconds: number, batch: number, shards: ShardScope = null): Promise<number> {
  return deleteBatch(q, table, `d.started_at < now() - make_interval(secs => $1) AND ${inShardScope('$2', 'dotgit_shard_of(d.tenant_id)')}`, [olderThanSeconds, shards], batch);
}

