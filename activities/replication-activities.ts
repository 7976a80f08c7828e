import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import client from 'prom-client';
import { repoPath } from '../core/git';
import { anyReplicaNodesEverywhere, nodesHoldingReposEverywhere, repoTargetsEverywhere } from '../core/platform-listings';
import { fingerprintOf, isRepository, readRefs, syncZone, zoneRefs, type Refs } from '../core/replica-sync';
import type { ReplicaZone } from '../core/replica-zones';
import type { ReconcileResult, SyncResult } from '../core/replication-types';
import type { RepoTarget } from '../core/run-types';
import type { ShardRouter } from '../core/shard-router';
import { nodeZone, replicaNodesOf } from '../core/storage-nodes';
import { upsertReplicaState } from '../core/stores/repos-store';

const lag = new client.Histogram({
  name: 'dotgit_replication_lag_seconds',
  help: 'Seconds from a push landing to a replica zone holding its refs',
  labelNames: ['zone'],
  buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600],
});
const lastLag = new client.Gauge({ name: 'dotgit_replication_last_lag_seconds', help: 'Replication lag of the latest sync per zone', labelNames: ['zone'] });
const syncFailures = new client.Counter({ name: 'dotgit_replication_sync_failures_total', help: 'Replica syncs that failed (the zone was unavailable); retried', labelNames: ['zone'] });
const driftRepaired = new client.Counter({ name: 'dotgit_replication_drift_repaired_total', help: 'Replicas the reconciliation found different from the primary and repaired', labelNames: ['zone'] });

export interface ReplicationDeps {
  /** Repositories and their replica state in their tenant's shard, storage nodes in the global database (ADR 0025). */
  router: ShardRouter;
  reposDir: string;
  zones: ReplicaZone[];
  internalSecret: string;
}

/** Heartbeats when run as an activity (reconciliation walks every repository); a no-op when called directly. */
function beat(detail?: unknown): void {
  try {
    Context.current().heartbeat(detail);
  } catch {
    // not inside an activity
  }
}

const sameRefs = (a: Refs | undefined, b: Refs) => !!a && fingerprintOf(a) === fingerprintOf(b);

/**
 * The one zone of the workflow's rounds that stands for a repository's replica nodes (ADR 0014):
 * `replicaZones` knows no repository, so `syncReplica` looks its nodes up and pushes to each as to
 * a url zone, recording each as zone `node:<id>`. Not a valid configured zone name, so no clash.
 */
export const REPLICA_NODES_ZONE = '@nodes';

/** Activities of replication: sync one repository to one zone, and the periodic reconciliation. */
export function createReplicationActivities(deps: ReplicationDeps) {
  const { router } = deps;
  const zoneNamed = (name: string) => {
    const zone = deps.zones.find((z) => z.name === name);
    // A zone removed from the configuration: nothing to retry.
    if (!zone) throw ApplicationFailure.nonRetryable(`no replica zone named ${name} is configured`, 'UnknownZoneError');
    return zone;
  };

  async function record(target: RepoTarget, zone: string, state: { refs?: Refs; lagSeconds?: number; error?: string }): Promise<void> {
    await upsertReplicaState(router.forTenant(target.tenantId), {
      tenantId: target.tenantId,
      repoId: target.repoId,
      zone,
      refsFingerprint: state.refs ? fingerprintOf(state.refs) : null,
      lagSeconds: state.lagSeconds ?? null,
      error: state.error?.slice(0, 1000) ?? null,
    });
  }

  async function sync(target: RepoTarget, zone: ReplicaZone): Promise<Refs | undefined> {
    const primaryDir = repoPath(deps.reposDir, target.tenant, target.repo);
    // A deleted repository (or one whose primary copy is lost) is never "replicated" as empty.
    if (!(await isRepository(primaryDir))) return undefined;
    try {
      return await syncZone(zone, { owner: target.tenant, repo: target.repo, primaryDir }, deps.internalSecret);
    } catch (err) {
      syncFailures.inc({ zone: zone.name });
      await record(target, zone.name, { error: (err as Error).message }).catch(() => undefined);
      throw err;
    }
  }

  /** Every replica node of the repository gets its copy (a url zone each); one that fails fails the round, retried. */
  async function syncReplicaNodes(target: RepoTarget, pushedAt: number): Promise<SyncResult> {
    const nodes = await replicaNodesOf(router.forTenant(target.tenantId), target.repoId, router.global);
    const outcomes = await Promise.allSettled(
      nodes.map(async (node) => {
        const zone: ReplicaZone = { name: nodeZone(node.id), url: node.url };
        const refs = await sync(target, zone);
        if (!refs) return undefined;
        const lagSeconds = Math.max(0, (Date.now() - pushedAt) / 1000);
        lag.observe({ zone: zone.name }, lagSeconds);
        lastLag.set({ zone: zone.name }, lagSeconds);
        await record(target, zone.name, { refs, lagSeconds });
        return lagSeconds;
      }),
    );
    const failed = outcomes.flatMap((o, i) => (o.status === 'rejected' ? [`${nodes[i].id}: ${(o.reason as Error).message.slice(0, 200)}`] : []));
    if (failed.length > 0) throw new Error(`replica nodes not synced: ${failed.join('; ')}`);
    const lags = outcomes.flatMap((o) => (o.status === 'fulfilled' && o.value !== undefined ? [o.value] : []));
    return lags.length > 0 ? { zone: REPLICA_NODES_ZONE, synced: true, lagSeconds: Math.max(...lags) } : { zone: REPLICA_NODES_ZONE, synced: false };
  }

  return {
    /** Names of the configured zones (the workflow asks each round, so a changed configuration applies). */
    async replicaZones(): Promise<string[]> {
      const zones = deps.zones.map((z) => z.name);
      // Replica nodes are recorded per repository; only when some repository has any is there a round for them.
      const anyNodes = await anyReplicaNodesEverywhere(router);
      return anyNodes ? [...zones, REPLICA_NODES_ZONE] : zones;
    },

    /** Brings `zone`'s copy of the repository up to date; the lag counts from `pushedAt` (epoch ms). */
    async syncReplica(args: { target: RepoTarget; zone: string; pushedAt: number }): Promise<SyncResult> {
      if (args.zone === REPLICA_NODES_ZONE) return syncReplicaNodes(args.target, args.pushedAt);
      const zone = zoneNamed(args.zone);
      const refs = await sync(args.target, zone);
      if (!refs) return { zone: zone.name, synced: false };
      const lagSeconds = Math.max(0, (Date.now() - args.pushedAt) / 1000);
      lag.observe({ zone: zone.name }, lagSeconds);
      lastLag.set({ zone: zone.name }, lagSeconds);
      await record(args.target, zone.name, { refs, lagSeconds });
      return { zone: zone.name, synced: true, lagSeconds };
    },

    /** The storage nodes the reconciliation walks beside (empty: the orchestration worker's disk, as before nodes). */
    async reconcileNodes(): Promise<{ up: string[]; down: string[] }> {
      return nodesHoldingReposEverywhere(router);
    },

    /**
     * Compares every repository's refs in every zone with the primary's and repairs each replica
     * that differs (missed pushes, a zone restored from an old copy, changes made behind our back).
     * A zone that fails is reported and left for the next pass; the others go on. With `node` (on
     * that node's storage queue, ADR 0014): only the repositories placed on it, or on no node.
     */
    async reconcileReplicas(args: { node?: string } = {}): Promise<ReconcileResult> {
      const repos = await repoTargetsEverywhere(router, args.node);
      const result: ReconcileResult = { repos: 0, zones: deps.zones.length, repaired: [], failed: [] };
      for (const target of repos) {
        const primaryDir = repoPath(deps.reposDir, target.tenant, target.repo);
        if (!(await isRepository(primaryDir))) continue;
        result.repos++;
        for (const zone of deps.zones) {
          const name = `${zone.name} ${target.tenant}/${target.repo}`;
          try {
            const primary = await readRefs(primaryDir);
            const replica = await zoneRefs(zone, { owner: target.tenant, repo: target.repo }, deps.internalSecret);
            if (sameRefs(replica, primary)) continue;
            const refs = await sync(target, zone);
            if (refs) await record(target, zone.name, { refs });
            driftRepaired.inc({ zone: zone.name });
            result.repaired.push(name);
          } catch (err) {
            result.failed.push(`${name}: ${(err as Error).message.slice(0, 200)}`);
          }
          beat(name);
        }
      }
      return result;
    },
  };
}

export type ReplicationActivities = ReturnType<typeof createReplicationActivities>;
