/**
 * Types and names shared by the replication workflows, their activities and the git-server relay
 * that starts them. Pure types and constants only: workflow code imports this file.
 */
import type { RepoTarget } from './run-types';

/** Signal of one push to replicate: when it landed (epoch ms), for the lag metric. */
export const PUSHED_SIGNAL = 'pushed';
export interface PushedSignal {
  pushedAt: number;
}

/** Input of `replication` (and its continue-as-new): zones still behind carry their oldest unreplicated push. */
export interface ReplicationInput extends RepoTarget {
  /** A push not yet handed to any zone (carried over a continue-as-new). */
  pendingSince?: number;
  /** zone → epoch ms of the oldest push that zone still lacks. */
  behind?: Record<string, number>;
  /** Milliseconds without pushes after which the workflow ends (default 10 minutes; tests shorten it). */
  idleMs?: number;
}

export interface SyncResult {
  zone: string;
  /** False when there was nothing to do (the primary copy is gone, e.g. the repository was deleted). */
  synced: boolean;
  lagSeconds?: number;
}

export interface ReconcileResult {
  repos: number;
  zones: number;
  /** `zone owner/repo` of every replica that differed from the primary and was repaired. */
  repaired: string[];
  failed: string[];
}

/** One replication workflow per repository: pushes signal it, a new one starts when none runs. */
export function replicationWorkflowId(tenant: string, repo: string): string {
  return `replication:${tenant}:${repo}`;
}
