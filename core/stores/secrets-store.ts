import type { Queryable } from '../db';

/** The secrets aggregate's SQL (`secrets`): sealed values per repository and environment ('' = every environment). */

/** Sets a secret's sealed value (creating or replacing it). */
export async function upsertSecret(q: Queryable, s: { tenantId: number; repoId: number; environment: string; name: string; valueEnc: string; updatedBy: string }): Promise<void> {
  await q.query(
    `INSERT INTO secrets (tenant_id, repo_id, environment, name, value_enc, updated_by) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (tenant_id, repo_id, environment, name) DO UPDATE SET value_enc = $5, updated_by = $6, updated_at = now()`,
    [s.tenantId, s.repoId, s.environment, s.name, s.valueEnc, s.updatedBy],
  );
}

/** A repository's secrets, names and who set them when (never values), by environment then name. */
export async function listSecretNames(q: Queryable, tenantId: number, repoId: number): Promise<{ name: string; environment: string; updated_by: string; updated_at: Date }[]> {
  const r = await q.query('SELECT name, environment, updated_by, updated_at FROM secrets WHERE tenant_id = $1 AND repo_id = $2 ORDER BY environment, name', [tenantId, repoId]);
  return r.rows;
}

/** Deletes one secret (nothing when it does not exist). */
export async function deleteSecret(q: Queryable, tenantId: number, repoId: number, environment: string, name: string): Promise<void> {
  await q.query('DELETE FROM secrets WHERE tenant_id = $1 AND repo_id = $2 AND environment = $3 AND name = $4', [tenantId, repoId, environment, name]);
}

/**
 * The sealed values of the named secrets of repository `repo` of a tenant, repository-wide ones ('')
 * first and then `environment`'s own, so a caller that keeps the last value per name lets the
 * environment's win.
 */
export async function findSecretValues(q: Queryable, tenantId: number, repo: string, names: string[], environment: string): Promise<{ name: string; environment: string; value_enc: string }[]> {
  const r = await q.query(
    `SELECT s.name, s.environment, s.value_enc FROM secrets s JOIN repos p ON p.id = s.repo_id
     WHERE s.tenant_id = $1 AND p.tenant_id = $1 AND p.name = $2 AND s.name = ANY($3) AND s.environment IN ('', $4)
     ORDER BY s.environment`,
    [tenantId, repo, names, environment],
  );
  return r.rows;
}
