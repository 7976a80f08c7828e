import type { ShardRouter } from '../../core/shard-router';
import { tenantDirectory } from '../../core/tenant-directory';
import { InputError } from '../../core/errors';
import { assertValidName } from '../../core/names';
import type { Principal } from '../../core/principal';
import { findReadableRepo } from '../../core/repos';
import { listRunsOfCommit } from '../../core/stores/runs-store';

export type CommitState = 'pending' | 'success' | 'failure' | 'error';

/** A run's status as a GitHub commit status state. */
export function commitStateOf(runStatus: string): CommitState {
  if (runStatus === 'success') return 'success';
  if (runStatus === 'failure') return 'failure';
  if (runStatus === 'cancelled') return 'error';
  return 'pending';
}

/**
 * GitHub's combined state over the latest status of each context: failure if any is failure or
 * error, pending if there is none or any is pending, else success.
 */
export function combinedState(states: CommitState[]): Exclude<CommitState, 'error'> {
  if (states.some((s) => s === 'failure' || s === 'error')) return 'failure';
  if (states.length === 0 || states.includes('pending')) return 'pending';
  return 'success';
}

/** Commit status per run (`GET …/commits/{sha}/status`), computed from the runs table, shaped as GitHub's combined status. */
export class CommitStatusService {
  constructor(
    /** Repository-owned rows live in their tenant's shard database (ADR 0025). */
    private readonly router: ShardRouter,
    private readonly publicUrl: string,
  ) {}

  async combined(principal: Principal | null | undefined, owner: string, name: string, sha: string) {
    const { repo } = await findReadableRepo(await tenantDirectory(this.router).dbOfOwner(assertValidName('owner', owner)), principal, owner, assertValidName('repo', name));
    if (!/^[0-9a-f]{40}$|^[0-9a-f]{64}$/.test(sha)) throw new InputError('sha must be a full commit id (40 or 64 lowercase hex digits)');
    const runs = await listRunsOfCommit(this.router.forTenant(repo.tenantId), repo.tenantId, repo.id, sha);
    const base = this.publicUrl.replace(/\/+$/, '');
    const statuses = runs.map((row) => ({
      id: row.id as string,
      state: commitStateOf(row.status),
      context: `dotgit/pipeline (${row.ref})`,
      description: row.message ?? `pipeline ${row.status}`,
      target_url: `${base}/api/v1/runs/${encodeURIComponent(row.id)}`,
      created_at: row.created_at,
      updated_at: row.finished_at ?? row.started_at ?? row.created_at,
    }));
    // Rows are newest first: the first of each context is its latest.
    const latest = new Map<string, CommitState>();
    for (const s of statuses) if (!latest.has(s.context)) latest.set(s.context, s.state);
    return {
      state: combinedState([...latest.values()]),
      sha,
      total_count: statuses.length,
      statuses,
      repository: { id: repo.id, name: repo.name, full_name: `${repo.owner}/${repo.name}`, private: repo.visibility !== 'public' },
      url: `${base}/api/v1/repos/${repo.owner}/${repo.name}/commits/${sha}/status`,
    };
  }
}
