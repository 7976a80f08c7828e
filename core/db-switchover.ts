/**
 * Planned switchover of the Postgres primary (issue 13 item 5; ADR 0027): the types and the pure
 * planning the `dbSwitchover` workflow (workflows/db-switchover.ts) and its activities share. The
 * cluster is Patroni's view (`GET /cluster` of its REST API).
 */

/** One member as Patroni's `GET /cluster` lists it (the fields we use). */
export interface ClusterMember {
  name: string;
  /** `leader`, `sync_standby`, `replica` (Patroni 4 also `standby_leader`). */
  role: string;
  /** `running` (a leader), `streaming`, `starting`, `stopped`, … */
  state: string;
  host: string;
  port: number;
  /** The member's REST API. */
  api_url?: string;
  /** Bytes of WAL the member has not received yet (Patroni's `lag`; "unknown" while it cannot tell). */
  lag?: number | string;
}

export interface SwitchoverInput {
  /** The member to promote; default the synchronous standby (it has every acknowledged commit). */
  candidate?: string;
  /** Who asked (the API's principal), for the workflow's history. */
  requestedBy?: string;
}

export interface SwitchoverPlan {
  leader: string;
  candidate: string;
}

export interface SwitchoverResult {
  from: string;
  to: string;
  /** The old primary streams from the new one again. */
  oldLeaderRejoined: boolean;
}

/** The workflow id: one switchover at a time (a second start while one runs is refused). */
export const SWITCHOVER_WORKFLOW_ID = 'db-switchover';

/**
 * Whom to switch from and to, or why not: the cluster needs one running leader, and the candidate
 * (the one asked for, else the synchronous standby) must be a streaming standby. Promoting an
 * asynchronous replica is allowed when named (Patroni then makes it synchronous first), never chosen.
 */
export function planSwitchover(cluster: ClusterMember[], candidate?: string): SwitchoverPlan | { refused: string } {
  const leaders = cluster.filter((m) => m.role === 'leader' && m.state === 'running');
  if (leaders.length !== 1) return { refused: `the cluster has ${leaders.length} running leaders (${describe(cluster)}); a switchover needs exactly one` };
  const leader = leaders[0]!.name;
  if (candidate === leader) return { refused: `${candidate} is the primary already` };
  const target = candidate ? cluster.find((m) => m.name === candidate) : cluster.find((m) => m.role === 'sync_standby');
  if (!target) return { refused: candidate ? `no member named ${candidate} (${describe(cluster)})` : `no synchronous standby to promote (${describe(cluster)})` };
  if (target.state !== 'streaming') return { refused: `${target.name} is ${target.state}, not streaming from ${leader}` };
  return { leader, candidate: target.name };
}

function describe(cluster: ClusterMember[]): string {
  return cluster.map((m) => `${m.name} ${m.role}/${m.state}`).join(', ') || 'no members';
}
