import { SERVICE_HEADER, signServiceToken } from '../core/internal-identity';
import type { PlacementNodes } from './services/repo-service';

/**
 * How long the node ids behind the configured git-servers are kept before they are asked again,
 * when every one of them answered. While one does not, each creation asks again (a refused
 * connection costs nothing; creations are rare), so a node that comes back takes new
 * repositories at once rather than a few seconds later.
 */
const CACHE_MS = 5_000;

/**
 * The storage nodes this api places new repositories on: the ids of the git-servers it is
 * configured with (`DOTGIT_GIT_UPSTREAMS`), each asked `GET /internal/node`. Only the configured
 * fleet takes new repositories: a git-server that merely registered in Postgres (another
 * installation's zone server, a test's own) is never chosen. One that does not answer is left out;
 * whether the others are up, placement reads from their heartbeats.
 */
export function placementNodes(upstreams: readonly string[], secret: string): PlacementNodes {
  let cached: { ids: string[]; at: number } | undefined;
  return async () => {
    if (cached && Date.now() - cached.at < CACHE_MS) return cached.ids;
    const token = await signServiceToken(secret, 'api');
    const answers = await Promise.all(
      upstreams.map(async (base) => {
        try {
          const res = await fetch(`${base.replace(/\/+$/, '')}/internal/node`, { headers: { [SERVICE_HEADER]: token }, signal: AbortSignal.timeout(2_000) });
          if (!res.ok) return undefined;
          const id = ((await res.json()) as { id?: unknown }).id;
          return typeof id === 'string' ? id : undefined;
        } catch {
          return undefined;
        }
      }),
    );
    const ids = [...new Set(answers.filter((id): id is string => id !== undefined))];
    cached = answers.every((id) => id !== undefined) ? { ids, at: Date.now() } : undefined;
    return ids;
  };
}
