import type { DatabaseState } from '../../core/db-replicas';
import { assertValidName } from '../../core/names';
import type { Principal } from '../../core/principal';
import { findReadableRepo } from '../../core/repos';
import { requirePlatformAdmin, requirePrincipal } from '../authz';
import type { ReplicaZone } from '../../core/replica-zones';
import type { ShardRouter } from '../../core/shard-router';
import { listReplicaStatus } from '../../core/stores/repos-store';
import { tenantDirectory } from '../../core/tenant-directory';

/**
 * A repository's replication state per configured zone (`GET …/replicas`, read access): whether
 * the zone holds the refs of the last push (the same test read failover uses), when it was last
 * synced, the lag of that sync, and the last error while it is behind.
 */
export class ReplicaService {
  constructor(
    private readonly router: ShardRouter,
    private readonly zones: ReplicaZone[],
  ) {}

  /**
   * The platform's replication at a glance (`GET /admin/replicas`, platform admins): the database's
   * primary and each standby's lag (null with one database host) and the configured replica zones.
   */
  overview(principal: Principal | null | undefined, database: DatabaseState | undefined) {
    requirePlatformAdmin(requirePrincipal(principal));
    return {
      database: database ? { primary: database.primary ?? null, standbys: database.replicas.map((r) => ({ name: r.name, lagBytes: r.lagBytes, lagSeconds: r.lagSeconds, inReads: r.inReads, error: r.error ?? null })) } : null,
      zones: this.zones.map((zone) => ({ name: zone.name, kind: 'root' in zone ? ('root' as const) : ('url' as const) })),
    };
  }

  async list(principal: Principal | null | undefined, owner: string, name: string) {
    // The repository and its replica rows live in its tenant's shard (ADR 0025).
    const db = await tenantDirectory(this.router).dbOfOwner(assertValidName('owner', owner));
    const { repo } = await findReadableRepo(db, principal, owner, assertValidName('repo', name));
    const rows = await listReplicaStatus(db, repo.tenantId, repo.id);
    const byZone = new Map(rows.filter((row) => row.zone).map((row) => [row.zone as string, row]));
    const pushed = rows[0]?.pushed_fingerprint as string | null;
    const pushedAt = rows[0]?.pushed_at as Date | null;
    return {
      pushedAt: pushedAt ? pushedAt.toISOString() : null,
      replicas: this.zones.map((zone) => {
        const row = byZone.get(zone.name);
        return {
          zone: zone.name,
          kind: 'root' in zone ? ('root' as const) : ('url' as const),
          // Nothing pushed yet: an empty replica is as up to date as the empty primary.
          upToDate: pushed === null ? true : row?.refs_fingerprint === pushed,
          syncedAt: row?.synced_at ? (row.synced_at as Date).toISOString() : null,
          lagSeconds: row?.lag_seconds === null || row?.lag_seconds === undefined ? null : Number(row.lag_seconds),
          lastError: (row?.last_error as string | null | undefined) ?? null,
        };
      }),
    };
  }
}
