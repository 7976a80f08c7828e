import { repoGenerationKey as generationKey, type Redis } from '../core/redis';

/** While a bump could not reach Redis, this process does not trust cached advertisements of the repository. */
const DISTRUST_MS = 10 * 60_000;

/**
 * A repository's generation: a number in Redis that changes whenever its refs may have changed
 * (every git-server instance, and the pipeline's cache-invalidation activity, bump it). Ref
 * advertisements are cached under it. When Redis cannot answer, `get` says "don't cache"
 * (undefined); a bump that fails makes this process distrust the repository's cache for a while,
 * and other instances' entries expire by their short TTL.
 */
export class RepoGenerations {
  private readonly distrustUntil = new Map<string, number>();

  constructor(private readonly redis: Redis | undefined) {}

  async get(repo: string): Promise<string | undefined> {
    if (!this.redis) return undefined;
    const until = this.distrustUntil.get(repo);
    if (until !== undefined) {
      if (until > Date.now()) return undefined;
      this.distrustUntil.delete(repo);
    }
    try {
      return (await this.redis.get(generationKey(repo))) ?? '0';
    } catch {
      return undefined;
    }
  }

  async bump(repo: string): Promise<void> {
    if (!this.redis) return;
    try {
      await this.redis.incr(generationKey(repo));
    } catch {
      this.distrustUntil.set(repo, Date.now() + DISTRUST_MS);
    }
  }
}
