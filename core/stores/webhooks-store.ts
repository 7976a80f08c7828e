import type { Queryable, Row } from '../db';
import { deleteBatch } from './prune';
import { inShardScope, type ShardScope } from './shard-scope';

/** The webhooks aggregate's SQL: `webhooks` (per repository, secret sealed) and their `webhook_deliveries` log. */

const HOOK_COLUMNS = 'id, url, events, created_by, created_at';

/** How many webhooks a repository has. */
export async function countWebhooks(q: Queryable, tenantId: number, repoId: number): Promise<number> {
  const r = await q.query('SELECT count(*)::int AS n FROM webhooks WHERE tenant_id = $1 AND repo_id = $2', [tenantId, repoId]);
  return r.rows[0].n;
}

/** A new webhook; answers its row (id, url, events, created_by, created_at). */
export async function insertWebhook(q: Queryable, h: { tenantId: number; repoId: number; url: string; secretEnc: string; events: string[]; createdBy: string }): Promise<Row> {
  const r = await q.query(
    `INSERT INTO webhooks (tenant_id, repo_id, url, secret_enc, events, created_by) VALUES ($1, $2, $3, $4, $5, $6)
     RETURNING ${HOOK_COLUMNS}`,
    [h.tenantId, h.repoId, h.url, h.secretEnc, h.events, h.createdBy],
  );
  return r.rows[0];
}

/** A repository's webhooks (never their secrets), by id. */
export async function listWebhooks(q: Queryable, tenantId: number, repoId: number): Promise<Row[]> {
  return (await q.query(`SELECT ${HOOK_COLUMNS} FROM webhooks WHERE tenant_id = $1 AND repo_id = $2 ORDER BY id`, [tenantId, repoId])).rows;
}

/** One webhook of a repository (never its secret). */
export async function findWebhook(q: Queryable, tenantId: number, repoId: number, id: number): Promise<Row | undefined> {
  return (await q.query(`SELECT ${HOOK_COLUMNS} FROM webhooks WHERE tenant_id = $1 AND repo_id = $2 AND id = $3`, [tenantId, repoId, id])).rows[0];
}

/** Deletes a repository's webhook; false when there was none. */
export async function deleteWebhook(q: Queryable, tenantId: number, repoId: number, id: number): Promise<boolean> {
  const r = await q.query('DELETE FROM webhooks WHERE tenant_id = $1 AND repo_id = $2 AND id = $3', [tenantId, repoId, id]);
  return (r.rowCount ?? 0) > 0;
}

/** A webhook's recorded delivery attempts, newest first, at most `limit`. */
export async function listDeliveries(q: Queryable, tenantId: number, webhookId: number, limit: number): Promise<Row[]> {
  const r = await q.query(
    `SELECT delivery_id, event, action, attempt, outcome, response_status, error, duration_ms, started_at, finished_at
       FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2 ORDER BY id DESC LIMIT $3`,
    [tenantId, webhookId, limit],
  );
  return r.rows;
}

/** Whether the repository has any webhook subscribed to `event` (or to every event, `*`). */
export async function hasWebhookFor(q: Queryable, tenantId: number, repoId: number, event: string): Promise<boolean> {
  const r = await q.query(`SELECT EXISTS (SELECT 1 FROM webhooks WHERE tenant_id = $1 AND repo_id = $2 AND (events @> ARRAY[$3]::text[] OR events @> ARRAY['*']::text[])) AS any`, [
    tenantId,
    repoId,
    event,
  ]);
  return r.rows[0]?.any === true;
}

/** Ids of the repository's webhooks subscribed to `event` (or to every event), by id. */
export async function webhookIdsFor(q: Queryable, tenantId: number, repoId: number, event: string): Promise<number[]> {
  const r = await q.query(`SELECT id FROM webhooks WHERE tenant_id = $1 AND repo_id = $2 AND (events @> ARRAY[$3]::text[] OR events @> ARRAY['*']::text[]) ORDER BY id`, [
    tenantId,
    repoId,
    event,
  ]);
  return r.rows.map((row) => Number(row.id));
}

/** Where a webhook delivers and its sealed secret; undefined once it is deleted. */
export async function findWebhookTarget(q: Queryable, tenantId: number, id: number): Promise<{ url: string; secret_enc: string } | undefined> {
  return (await q.query('SELECT url, secret_enc FROM webhooks WHERE tenant_id = $1 AND id = $2', [tenantId, id])).rows[0];
}

/** Logs one delivery attempt (a retried activity's second write of the same attempt is ignored). */
export async function recordDelivery(
  q: Queryable,
  d: { tenantId: number; webhookId: number; deliveryId: string; event: string; action: string | null; attempt: number; outcome: string; responseStatus: number | null; error: string | null; durationMs: number; startedAt: Date; body?: string | null },
): Promise<void> {
  // The body (migration 0043, for redelivery) only on the first row recorded for the delivery id.
  await q.query(
    `INSERT INTO webhook_deliveries (tenant_id, webhook_id, delivery_id, event, action, attempt, outcome, response_status, error, duration_ms, started_at, body)
     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
            CASE WHEN EXISTS (SELECT 1 FROM webhook_deliveries k WHERE k.delivery_id = $3 AND k.body IS NOT NULL) THEN NULL ELSE $12::text END
     ON CONFLICT (delivery_id, attempt) DO NOTHING`,
    [d.tenantId, d.webhookId, d.deliveryId, d.event, d.action, d.attempt, d.outcome, d.responseStatus, d.error, d.durationMs, d.startedAt, d.body ?? null],
  );
}

/**
 * What a recorded delivery of this webhook sent (event, action and its body), for a redelivery;
 * undefined when the hook has no such delivery, `body` null when its body was not kept.
 */
export async function findDeliveredBody(q: Queryable, tenantId: number, webhookId: number, deliveryId: string): Promise<{ event: string; action: string | null; body: string | null } | undefined> {
  const r = await q.query(
    `SELECT event, action, body FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2 AND delivery_id = $3
      ORDER BY (body IS NULL), attempt LIMIT 1`,
    [tenantId, webhookId, deliveryId],
  );
  return r.rows[0];
}

/**
 * Deletes up to `batch` delivery-log rows finished more than `olderThanSeconds` ago, beyond each
 * webhook's newest `keep` (a row may go when its id is at most the id of its hook's (keep+1)-th
 * newest row; webhook_deliveries_by_hook serves it); answers how many.
 */
export function deleteOldDeliveries(q: Queryable, olderThanSeconds: number, keep: number, batch: number, shards: ShardScope = null): Promise<number> {
  return deleteBatch(
    q,
    'webhook_deliveries',
    `d.finished_at < now() - make_interval(secs => $1)
     AND d.id <= (SELECT k.id FROM webhook_deliveries k WHERE k.webhook_id = d.webhook_id ORDER BY k.id DESC OFFSET $2 LIMIT 1)
     AND ${inShardScope('$3', 'dotgit_shard_of(d.tenant_id)')}`,
    [olderThanSeconds, keep, shards],
    batch,
  );
}
