import { fanOut } from '../../core/shard-databases';
import type { ShardRouter } from '../../core/shard-router';
import { InputError, NotFoundError } from '../../core/errors';
import { assertValidName } from '../../core/names';
import type { Principal } from '../../core/principal';
import { shardOf } from '../../core/shards';
import { findTenantIdByName, listAuditEvents, verifyAuditChains, type AuditEvent } from '../../core/stores/audit-store';
import { requirePlatformAdmin, requirePrincipal, requireTenantAdmin } from '../authz';
import { queryParam } from '../validation';

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;

function whole(q: Record<string, unknown>, name: string, min: number, max: number): number | undefined {
  const v = queryParam(q, name);
  if (v === undefined) return undefined;
  if (!/^\d{1,16}$/.test(v) || Number(v) < min || Number(v) > max) throw new InputError(`query parameter ${name} must be a whole number from ${min} to ${max}`);
  return Number(v);
}

function view(e: AuditEvent) {
  return {
    id: e.id,
    tenant: e.tenant,
    actor: e.actor,
    action: e.action,
    target: e.target,
    detail: e.detail,
    requestId: e.requestId,
    at: e.at,
    shard: e.shard,
    // Rows from before the chains began have no place in one.
    seq: e.seq || null,
    hash: e.hash || null,
  };
}

/** The audit log for its readers: tenant admins (their tenant) and platform admins (any, and verification). */
export class AuditService {
  /** Tenants in the global database; each shard's events and chain in its shard's database (ADR 0025). */
  constructor(private readonly router: ShardRouter) {}

  /**
   * The tenant's id when `tenant` names one the caller administers. Outsiders get the same 404
   * whether or not it exists (ADR 0010), before any lookup.
   */
  private async tenantFor(p: Principal, name: string): Promise<number> {
    assertValidName('tenant', name);
    if (!p.platformAdmin && p.tenantName !== name) throw new NotFoundError(`tenant ${name} not found`);
    const id = await findTenantIdByName(this.router.global, name);
    if (id === undefined) throw new NotFoundError(`tenant ${name} not found`);
    return id;
  }

  /**
   * Events oldest first, `limit` (default 100) after the event id `after`; `next` is the `after` of
   * the next page (null on the last). Without `tenant`: the caller's tenant, or every tenant for a
   * platform admin.
   */
  async list(principal: Principal | null | undefined, q: Record<string, unknown>) {
    const p = requirePrincipal(principal);
    const name = queryParam(q, 'tenant');
    const after = whole(q, 'after', 0, Number.MAX_SAFE_INTEGER) ?? 0;
    const limit = whole(q, 'limit', 1, MAX_LIMIT) ?? DEFAULT_LIMIT;
    const tenantId = name !== undefined ? await this.tenantFor(p, name) : p.platformAdmin ? undefined : p.tenantId;
    if (tenantId === undefined) requirePlatformAdmin(p);
    else requireTenantAdmin(p, tenantId);
    // One tenant's: its shard's database. Every tenant's: each database's page of the chains placed
    // on it (a moved shard's old copy is not listed again), merged by id (ids are unique across
    // databases; within one database they are in order of writing).
    const events =
      tenantId !== undefined
        ? await listAuditEvents(this.router.forTenant(tenantId), { tenantId, after, limit })
        : (await fanOut(this.router, (db, d) => listAuditEvents(db, { after, limit, shards: d.scope }))).flat().sort((a, b) => a.id - b.id).slice(0, limit);
    return { events: events.map(view), next: events.length === limit ? events[events.length - 1].id : null };
  }

  /** Walks every shard's chain, or only the chain of `tenant`'s shard; names the first broken link. */
  async verify(principal: Principal | null | undefined, q: Record<string, unknown>) {
    const p = requirePrincipal(principal);
    requirePlatformAdmin(p);
    const name = queryParam(q, 'tenant');
    const shards = name === undefined ? undefined : [shardOf(await this.tenantFor(p, name))];
    return verifyAuditChains((shard) => this.router.forShard(shard), shards);
  }
}
