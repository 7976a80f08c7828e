import type { Queryable } from '../db';

/** The SQL of `lfs_objects`: which LFS objects (by oid, with their size) a repository has. */

/** The recorded size of one object of a repository. */
export async function findLfsObjectSize(q: Queryable, tenantId: number, repoId: number, oid: string): Promise<number | undefined> {
  const r = await q.query(`SELECT size FROM lfs_objects WHERE tenant_id = $1 AND repo_id = $2 AND oid = $3`, [tenantId, repoId, oid]);
  return r.rows.length === 0 ? undefined : Number(r.rows[0].size);
}

/** The recorded objects of a repository among `oids`, with their sizes (as stored: a bigint string). */
export async function listLfsObjects(q: Queryable, tenantId: number, repoId: number, oids: string[]): Promise<{ oid: string; size: string }[]> {
  const r = await q.query(`SELECT oid, size FROM lfs_objects WHERE tenant_id = $1 AND repo_id = $2 AND oid = ANY($3::text[])`, [tenantId, repoId, oids]);
  return r.rows;
}

/** Records an uploaded object (once: the same oid is the same bytes). */
export async function insertLfsObject(q: Queryable, tenantId: number, repoId: number, oid: string, size: number): Promise<void> {
  await q.query(`INSERT INTO lfs_objects (tenant_id, repo_id, oid, size) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, [tenantId, repoId, oid, size]);
}
