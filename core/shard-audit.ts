import { inTransaction, type DbClient } from './db';
import type { ShardRouter } from './shard-router';
import { retryWhenFenced } from './shard-fence';
import { appendAudit, type AuditEntry } from './stores/audit-store';

/**
 * A change to global tables (tenants, users, tokens: ADR 0025) together with its audit entry, whose
 * hash chain lives in the tenant's shard. When that shard is on the global database both commit in
 * one transaction, as before sharding; when it is elsewhere the entry is appended right after the
 * change commits (a crash between the two loses the entry, never a link of the chain, as for
 * services that append after their change, ADR 0017). `fn` answers its result and the entries.
 */
export async function inGlobalTransactionAudited<T>(router: ShardRouter, fn: (c: DbClient) => Promise<{ value: T; audit: AuditEntry[] }>): Promise<T> {
  let later: AuditEntry[] = [];
  const value = await inTransaction(router.global, async (c) => {
    const { value, audit } = await fn(c);
    for (const e of audit) {
      if (shardDb(router, e) === router.global) await appendAudit(c, e);
      else later.push(e);
    }
    return value;
  });
  const pending = later;
  later = [];
  for (const e of pending) await appendAuditRouted(router, e);
  return value;
}

/** An entry's chain: its tenant's shard, shard 0 for entries without a tenant (core/shards.ts). */
function shardDb(router: ShardRouter, e: AuditEntry) {
  return e.tenantId == null ? router.forShard(0) : router.forTenant(Number(e.tenantId));
}

/**
 * Appends an entry on its chain's database, in a transaction of its own. A shard move's fence
 * (ADR 0026) is waited out: the entry lands on the shard's new database once the switch is seen
 * (the change it records is committed already; a refusal here would lose the entry).
 */
export async function appendAuditRouted(router: ShardRouter, e: AuditEntry): Promise<void> {
  await retryWhenFenced(router, () => appendAudit(shardDb(router, e), e));
}
