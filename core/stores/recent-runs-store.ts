import type { Queryable, Row } from '../db';
import { inShardScope, type ShardScope } from './shard-scope';

/**
 * Runs across repositories (issue 18, `GET /api/v1/runs`): the newest runs of the repositories of
 * the caller's tenant and of those granted to the caller (`permissions`), in one database, newest
 * first, at most `limit`. Each repository's newest runs come from its `runs_by_repo` index (a
 * LATERAL probe per repository), so the cost grows with the repositories, not their history. Rows are
 * shaped like `repoOwnedSelect('runs')` plus the caller's grant, so the service applies the one
 * access rule (core/principal `repoAccess`, token scopes included) to each.
 */
export async function listRecentRunsOf(
  q: Queryable,
  o: { tenantId: number | null; userId: number | null; ref?: string; status?: string; event?: string; commit?: string; limit: number; shards?: ShardScope },
): Promise<Row[]> {
  const r = await q.query(
    `SELECT x.*, t.name AS owner, p.name AS repo_name, p.visibility, p.id AS rid, p.created_at AS repo_created_at, g.access AS grant
       FROM repos p JOIN tenants t ON t.id = p.tenant_id
       LEFT JOIN permissions g ON g.tenant_id = p.tenant_id AND g.repo_id = p.id AND g.user_id = $2::bigint
       CROSS JOIN LATERAL (
         SELECT * FROM runs x
          WHERE x.repo_id = p.id AND x.tenant_id = p.tenant_id
            AND ($3::text IS NULL OR x.ref = $3) AND ($4::text IS NULL OR x.status = $4)
            AND ($5::text IS NULL OR coalesce(x.event, 'push') = $5) AND ($6::text IS NULL OR x.commit_sha = $6)
          ORDER BY x.created_at DESC, x.id DESC LIMIT $7) x
      WHERE (p.tenant_id = $1::bigint OR g.access IS NOT NULL) AND ${inShardScope('$8', 'dotgit_shard_of(p.tenant_id)')}
      ORDER BY x.created_at DESC, x.id DESC LIMIT $7`,
    [o.tenantId, o.userId, o.ref ?? null, o.status ?? null, o.event ?? null, o.commit ?? null, o.limit, o.shards ?? null],
  );
  return r.rows;
}
