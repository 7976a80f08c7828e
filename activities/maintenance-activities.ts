import { repoPath, runGit } from '../core/git';
import { markMaintained, pushesSinceMaintenance } from '../core/stores/repos-store';
import { reposNeedingMaintenanceEverywhere } from '../core/platform-listings';
import type { RepoTarget } from '../core/run-types';
import type { ShardRouter } from '../core/shard-router';

/** Thrown when git fails to repack a repository (the activity is retried by Temporal). */
export class MaintenanceFailedError extends Error {
  override readonly name = 'MaintenanceFailedError';
}

/**
 * Activities of repository maintenance: find changed repositories (in every database of the shard
 * map, ADR 0025), repack them (their counters in their tenant's shard).
 */
export function createMaintenanceActivities({ router, reposDir }: { router: ShardRouter; reposDir: string }) {
  return {
    async listReposNeedingMaintenance(args: { limit: number }): Promise<RepoTarget[]> {
      return reposNeedingMaintenanceEverywhere(router, args.limit);
    },

    /**
     * One full repack with a reachability bitmap and a commit-graph, the two things that keep
     * clones and fetches fast (what `git maintenance` and Gitaly's housekeeping do). Safe beside
     * pushes and fetches: new packs from concurrent pushes are not touched, readers keep open packs.
     */
    async maintainRepo(target: RepoTarget): Promise<{ pushesCovered: number }> {
      const db = router.forTenant(target.tenantId);
      const seen = await pushesSinceMaintenance(db, target.repoId);
      const gitDir = repoPath(reposDir, target.tenant, target.repo);
      for (const args of [
        ['repack', '-a', '-d', '-b', '--write-midx', '-q'],
        ['commit-graph', 'write', '--reachable', '--split=replace'],
        ['pack-refs', '--all'],
      ]) {
        const r = await runGit(['--git-dir', gitDir, '-c', 'repack.writeBitmaps=true', ...args]);
        if (r.code !== 0) throw new MaintenanceFailedError(`git ${args[0]} failed for ${target.tenant}/${target.repo}: ${r.stderr.trim().slice(0, 300)}`);
      }
      const covered = seen ?? 0;
      // Pushes that arrived during the repack keep their count for the next round.
      await markMaintained(db, target.repoId, covered);
      return { pushesCovered: covered };
    },
  };
}

export type MaintenanceActivities = ReturnType<typeof createMaintenanceActivities>;
