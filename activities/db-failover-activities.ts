import { ApplicationFailure, Context } from '@temporalio/activity';
import type { ClusterMember, SwitchoverPlan } from '../core/db-switchover';

export interface DbFailoverDeps {
  /** Patroni REST APIs (`DOTGIT_PATRONI_URLS`); any member that answers speaks for the cluster. */
  patroniUrls: string[];
}

const REQUEST_TIMEOUT_MS = 5000;

/**
 * Activities of the planned switchover (workflows/db-switchover.ts): Patroni's REST API does the
 * work; these ask it, and watch until the candidate leads and the old primary follows it.
 */
export function createDbFailoverActivities(deps: DbFailoverDeps) {
  async function cluster(): Promise<ClusterMember[]> {
    if (!deps.patroniUrls.length) throw ApplicationFailure.nonRetryable('no Patroni REST API is configured (DOTGIT_PATRONI_URLS)', 'NoPatroni');
    const errors: string[] = [];
    for (const url of deps.patroniUrls) {
      try {
        const res = await fetch(`${url.replace(/\/+$/, '')}/cluster`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
        if (res.ok) return ((await res.json()) as { members: ClusterMember[] }).members;
        errors.push(`${url}: ${res.status}`);
      } catch (err) {
        errors.push(`${url}: ${(err as Error).message}`);
      }
    }
    throw new Error(`no Patroni member answers /cluster (${errors.join('; ')})`);
  }

  return {
    /** Patroni's view of the cluster: members, roles, states, lag. */
    async patroniCluster(): Promise<ClusterMember[]> {
      return cluster();
    },

    /**
     * `POST /switchover` on the leader. Patroni answers 200 once the candidate has been promoted; a
     * 412 (precondition: the leader changed, the candidate is not healthy) is final.
     */
    async requestSwitchover(plan: SwitchoverPlan): Promise<void> {
      const leader = (await cluster()).find((m) => m.name === plan.leader);
      if (!leader?.api_url) throw ApplicationFailure.nonRetryable(`${plan.leader} is no longer a member with a REST API`, 'SwitchoverRefused');
      const res = await fetch(`${leader.api_url.replace(/\/patroni$/, '')}/switchover`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ leader: plan.leader, candidate: plan.candidate }),
        signal: AbortSignal.timeout(60_000),
      });
      const text = (await res.text()).trim();
      if (res.status === 200) return;
      if (res.status >= 400 && res.status < 500) throw ApplicationFailure.nonRetryable(`Patroni refused the switchover ${plan.leader} -> ${plan.candidate}: ${res.status} ${text}`, 'SwitchoverRefused');
      throw new Error(`Patroni answered the switchover ${plan.leader} -> ${plan.candidate} with ${res.status} ${text}`);
    },

    /**
     * Waits (heartbeating) until `candidate` leads and runs, then until the old leader streams from it
     * (a rejoin that takes longer than `rejoinSeconds` is reported, not waited for).
     */
    async awaitSwitchover(args: SwitchoverPlan & { rejoinSeconds: number }): Promise<{ oldLeaderRejoined: boolean }> {
      const ctx = Context.current();
      const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
      for (;;) {
        const members = await cluster().catch(() => []);
        const now = members.find((m) => m.role === 'leader');
        if (now && now.name !== args.candidate && now.name !== args.leader) {
          throw ApplicationFailure.nonRetryable(`${now.name} leads, neither ${args.leader} nor ${args.candidate}`, 'SwitchoverDiverted');
        }
        if (now?.name === args.candidate && now.state === 'running') break;
        ctx.heartbeat('waiting for the candidate to lead');
        await sleep(250);
      }
      const deadline = Date.now() + args.rejoinSeconds * 1000;
      while (Date.now() < deadline) {
        const old = (await cluster().catch(() => [])).find((m) => m.name === args.leader);
        if (old?.state === 'streaming') return { oldLeaderRejoined: true };
        ctx.heartbeat('waiting for the old primary to follow');
        await sleep(250);
      }
      return { oldLeaderRejoined: false };
    },
  };
}

export type DbFailoverActivities = ReturnType<typeof createDbFailoverActivities>;
