import type { ShardRouter } from '../../core/shard-router';
import { tenantDirectory } from '../../core/tenant-directory';
import { assertValidName } from '../../core/names';
import type { Principal } from '../../core/principal';
import { findReadableRepo } from '../../core/repos';
import { latestRunsOfCommits } from '../../core/stores/commit-runs-store';
import type { RepoReader } from '../repo-reader';
import { commitsQuery, refQuery, treePath } from '../schemas/browse';
import { parseBody } from '../validation';

type Caller = Principal | null | undefined;

/**
 * The repository browser (issue 18, ADR 0034): read access to the repository as for its other
 * reads (404 for a repository the caller may not see), then the git-server reads the repository on
 * its storage node. Commits get their latest run from the runs store of the tenant's shard.
 */
export class BrowseService {
  constructor(
    private readonly router: ShardRouter,
    private readonly reader: RepoReader,
  ) {}

  private async readable(principal: Caller, owner: string, name: string) {
    const db = await tenantDirectory(this.router).dbOfOwner(assertValidName('owner', owner));
    const { repo } = await findReadableRepo(db, principal, owner, assertValidName('repo', name));
    return { db, repo };
  }

  async branches(principal: Caller, owner: string, name: string) {
    const { repo } = await this.readable(principal, owner, name);
    const { head, refs, truncated } = await this.reader.refs(repo.owner, repo.name, 'branches');
    return { defaultBranch: head, branches: refs.map((b) => ({ ...b, default: b.name === head })), truncated };
  }

  async tags(principal: Caller, owner: string, name: string) {
    const { repo } = await this.readable(principal, owner, name);
    const { refs, truncated } = await this.reader.refs(repo.owner, repo.name, 'tags');
    return { tags: refs, truncated };
  }

  async commits(principal: Caller, owner: string, name: string, query: unknown) {
    const { db, repo } = await this.readable(principal, owner, name);
    const q = parseBody(commitsQuery, query);
    const log = await this.reader.log(repo.owner, repo.name, q.ref, q.limit ? Number(q.limit) : 30);
    const runs = await latestRunsOfCommits(db, repo.tenantId, repo.id, log.commits.map((c) => c.sha));
    return { ...log, commits: log.commits.map((c) => ({ ...c, run: runs.get(c.sha) ?? null })) };
  }

  async tree(principal: Caller, owner: string, name: string, path: string, query: unknown) {
    const { repo } = await this.readable(principal, owner, name);
    return this.reader.tree(repo.owner, repo.name, parseBody(refQuery, query).ref, parseBody(treePath, path));
  }

  async raw(principal: Caller, owner: string, name: string, path: string, query: unknown) {
    const { repo } = await this.readable(principal, owner, name);
    return this.reader.blob(repo.owner, repo.name, parseBody(refQuery, query).ref, parseBody(treePath, path));
  }
}
