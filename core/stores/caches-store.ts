import type { Queryable } from '../db';
import type { CacheCandidate } from '../pipeline-cache';

/**
 * Pipeline dependency caches' SQL (`pipeline_caches`, migration 0032; ADR 0030): one row per saved
 * archive, scoped by repository and ref; `last_used_at` orders least-recently-used eviction.
 */

export interface CacheRow {
  id: string;
  tenant_id: string;
  repo_id: string;
  ref: string;
  key: string;
  object_key: string;
  size: string;
  run_id: string | null;
  job: string | null;
  created_at: Date;
  last_used_at: Date;
}

/** The repository a run's step belongs to, and its default branch (where caches fall back to). */
export async function findCacheScope(q: Queryable, tenantId: number, repo: string): Promise<{ repoId: number; defaultBranch: string | undefined } | undefined> {
  const r = await q.query('SELECT id, default_branch FROM repos WHERE tenant_id = $1 AND name = $2', [tenantId, repo]);
  const row = r.rows[0];
  return row ? { repoId: Number(row.id), defaultBranch: row.default_branch ?? undefined } : undefined;
}

/** The first candidate that names a saved cache (a prefix: its newest match), marked used now. */
export async function findRestorableCache(q: Queryable, tenantId: number, repoId: number, candidates: CacheCandidate[]): Promise<CacheRow | undefined> {
  for (const c of candidates) {
    const r = await q.query<CacheRow>(
      c.prefix
        ? `SELECT * FROM pipeline_caches WHERE tenant_id = $1 AND repo_id = $2 AND ref = $3 AND starts_with(key, $4) ORDER BY created_at DESC, id DESC LIMIT 1`
        : `SELECT * FROM pipeline_caches WHERE tenant_id = $1 AND repo_id = $2 AND ref = $3 AND key = $4`,
      [tenantId, repoId, c.ref, c.key],
    );
    const row = r.rows[0];
    if (row) {
      await q.query('UPDATE pipeline_caches SET last_used_at = now() WHERE tenant_id = $1 AND id = $2', [tenantId, row.id]);
      return row;
    }
  }
  return undefined;
}

/** Whether `key` is already saved for this ref (a cache is written once per ref and key). */
export async function cacheExists(q: Queryable, tenantId: number, repoId: number, ref: string, key: string): Promise<boolean> {
  const r = await q.query('SELECT 1 FROM pipeline_caches WHERE tenant_id = $1 AND repo_id = $2 AND ref = $3 AND key = $4', [tenantId, repoId, ref, key]);
  return r.rows.length > 0;
}

/** Records a saved archive; false when another run saved the same ref and key first (that one stays). */
export async function insertCache(
  q: Queryable,
  c: { tenantId: number; repoId: number; ref: string; key: string; objectKey: string; size: number; runId: string; job: string },
): Promise<boolean> {
  const r = await q.query(
    `INSERT INTO pipeline_caches (tenant_id, repo_id, ref, key, object_key, size, run_id, job) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (tenant_id, repo_id, ref, key) DO NOTHING`,
    [c.tenantId, c.repoId, c.ref, c.key, c.objectKey, c.size, c.runId, c.job],
  );
  return (r.rowCount ?? 0) > 0;
}

/**
 * The least recently used caches of a repository beyond `maxBytes` in all (newest use kept first),
 * deleted; answers their object keys so the caller removes the archives.
 */
export async function evictCachesOver(q: Queryable, tenantId: number, repoId: number, maxBytes: number): Promise<{ id: string; object_key: string; key: string }[]> {
  const r = await q.query(
    `DELETE FROM pipeline_caches c USING (
       SELECT id, sum(size) OVER (ORDER BY last_used_at DESC, id DESC) AS kept FROM pipeline_caches WHERE tenant_id = $1 AND repo_id = $2
     ) o
     WHERE c.tenant_id = $1 AND c.id = o.id AND o.kept > $3
     RETURNING c.id, c.object_key, c.key`,
    [tenantId, repoId, maxBytes],
  );
  return r.rows;
}

/** A repository's caches, most recently used first (at most 1000), optionally by ref and key prefix; and their total size. */
export async function listCaches(q: Queryable, tenantId: number, repoId: number, f: { ref?: string; key?: string }): Promise<{ rows: CacheRow[]; totalBytes: number }> {
  const rows = await q.query<CacheRow>(
    `SELECT * FROM pipeline_caches WHERE tenant_id = $1 AND repo_id = $2 AND ($3::text IS NULL OR ref = $3) AND ($4::text IS NULL OR starts_with(key, $4))
     ORDER BY last_used_at DESC, id DESC LIMIT 1000`,
    [tenantId, repoId, f.ref ?? null, f.key ?? null],
  );
  const total = await q.query('SELECT coalesce(sum(size), 0)::float8 AS total FROM pipeline_caches WHERE tenant_id = $1 AND repo_id = $2', [tenantId, repoId]);
  return { rows: rows.rows, totalBytes: Number(total.rows[0].total) };
}

export async function findCache(q: Queryable, tenantId: number, repoId: number, id: number): Promise<CacheRow | undefined> {
  const r = await q.query<CacheRow>('SELECT * FROM pipeline_caches WHERE tenant_id = $1 AND repo_id = $2 AND id = $3', [tenantId, repoId, id]);
  return r.rows[0];
}

/** Deletes a cache row; answers its archive's object key (undefined when there was none). */
export async function deleteCache(q: Queryable, tenantId: number, repoId: number, id: number): Promise<string | undefined> {
  const r = await q.query('DELETE FROM pipeline_caches WHERE tenant_id = $1 AND repo_id = $2 AND id = $3 RETURNING object_key', [tenantId, repoId, id]);
  return r.rows[0]?.object_key;
}
