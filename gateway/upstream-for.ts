/** Routes by path prefix: `/api/` to the api service, `/{owner}/{repo}.git/...` to the git-server; nothing else (never `/internal/`). */
export function upstreamFor(path: string): 'api' | 'git' | undefined {
  if (path === '/api' || path.startsWith('/api/')) return 'api';
  if (/^\/[^/]+\/[^/]+\.git(\/|$)/.test(path)) return 'git';
  return undefined;
}
