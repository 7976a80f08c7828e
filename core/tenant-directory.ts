import type { Db } from './db';
import type { ShardRouter } from './shard-router';
import { findTenantByName, insertTenantCopy, listTenants } from './stores/tenants-store';

/**
 * The tenant directory (ADR 0025): `tenants` lives in the global database, with a reference copy in
 * every other database of the shard map (so tenant-owned tables keep their key to it and their
 * joins for its name). A tenant's id never changes and tenants are never deleted, so a name's id is
 * cached for the life of the process.
 */
export class TenantDirectory {
  private readonly ids = new Map<string, number>();

  constructor(private readonly router: ShardRouter) {}

  /** The tenant's id, or undefined when no tenant has this name. */
  async idOf(name: string): Promise<number | undefined> {
    const known = this.ids.get(name);
    if (known !== undefined) return known;
    const t = await findTenantByName(this.router.global, name);
    if (t) this.ids.set(name, t.id);
    return t?.id;
  }

  /**
   * The database of the named tenant's shard; for an unknown tenant the global database, where
   * lookups of tenant-owned rows find nothing (so callers answer 404 as before).
   */
  async dbOfOwner(name: string): Promise<Db> {
    return (await this.shardOfName(name))?.db ?? this.router.global;
  }

  /**
   * The database of a run's or deploy's tenant, from its id: `pipeline:<tenant>:…`,
   * `deploy:<tenant>:…` (core/run-types.ts, core/deploy-types.ts). Tenant names never hold `:`.
   */
  async dbOfWorkflowId(id: string): Promise<Db> {
    const parts = id.split(':');
    return parts.length >= 3 ? this.dbOfOwner(parts[1]) : this.router.global;
  }

  /** The database holding the named tenant's shard and its id, or undefined for an unknown tenant. */
  async shardOfName(name: string): Promise<{ tenantId: number; db: Db } | undefined> {
    const id = await this.idOf(name);
    return id === undefined ? undefined : { tenantId: id, db: this.router.forTenant(id) };
  }
}

const directories = new WeakMap<ShardRouter, TenantDirectory>();

/** The process's one directory of a router (one cache of names). */
export function tenantDirectory(router: ShardRouter): TenantDirectory {
  let d = directories.get(router);
  if (!d) directories.set(router, (d = new TenantDirectory(router)));
  return d;
}

/** Writes a new tenant's reference copy into every database but the global one. */
export async function copyTenantEverywhere(router: ShardRouter, t: { id: number; name: string; createdAt?: Date }): Promise<void> {
  await Promise.all(router.databases().filter((d) => d.db !== router.global).map((d) => insertTenantCopy(d.db, t)));
}

/** Brings every database's reference copy of `tenants` up to date (after a database joined the map, or a crash between a tenant's creation and its copies). */
export async function syncTenantCopies(router: ShardRouter): Promise<void> {
  const tenants = await listTenants(router.global);
  for (const t of tenants) await copyTenantEverywhere(router, t);
}
