import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { z } from 'zod';
import { UpstreamPool } from '../core/upstream-pool';
import { upstreamFor } from './upstream-for';

const routeSchema = z.strictObject({
  /** Path prefix, e.g. `/api/`; or `git: true` for `/{owner}/{repo}.git/…`. */
  prefix: z.string().startsWith('/').optional(),
  git: z.literal(true).optional(),
  /** Only when this header has this value (e.g. `X-Dotgit-Canary: 1`, an API version header). */
  header: z.strictObject({ name: z.string().min(1), value: z.string() }).optional(),
  upstream: z.string().min(1),
});

const routesFileSchema = z.strictObject({
  upstreams: z.record(z.string(), z.string().url()).default({}),
  routes: z.array(routeSchema).default([]),
});

export type Route = z.infer<typeof routeSchema>;
export interface RoutingTable {
  /** Each upstream's instances: the built-in api and git pools, one fixed URL per routes-file upstream. */
  upstreams: Record<string, UpstreamPool>;
  routes: Route[];
}

/** Thrown at start-up when the routes file is unreadable or does not fit the schema. */
export class RoutesConfigError extends Error {
  override readonly name = 'RoutesConfigError';
}

/** A built-in upstream: a pool of its instances, or one fixed URL (never taken out). */
export type UpstreamSpec = URL | UpstreamPool;

const asPool = (name: string, u: UpstreamSpec) => (u instanceof UpstreamPool ? u : UpstreamPool.single(name, u));

/**
 * The routing table: routes from `DOTGIT_ROUTES_FILE` (YAML or JSON) first, in order, then the
 * built-in ones (`/api/` → api, git paths → git-server). Every route names a known upstream.
 */
export function routingTable(defaults: { api: UpstreamSpec; git: UpstreamSpec }, file?: string): RoutingTable {
  let extra: z.infer<typeof routesFileSchema> = { upstreams: {}, routes: [] };
  if (file) {
    try {
      extra = routesFileSchema.parse(YAML.parse(readFileSync(file, 'utf8')) ?? {});
    } catch (err) {
      throw new RoutesConfigError(`routes file ${file}: ${(err as Error).message}`);
    }
  }
  const upstreams: Record<string, UpstreamPool> = { api: asPool('api', defaults.api), git: asPool('git', defaults.git) };
  for (const [name, url] of Object.entries(extra.upstreams)) upstreams[name] = UpstreamPool.single(name, new URL(url));
  const routes: Route[] = [...extra.routes, { prefix: '/api/', upstream: 'api' }, { git: true, upstream: 'git' }];
  for (const r of routes) {
    if (!upstreams[r.upstream]) throw new RoutesConfigError(`route to unknown upstream "${r.upstream}"`);
    if (!r.prefix && !r.git) throw new RoutesConfigError('every route needs a prefix or git: true');
  }
  return { upstreams, routes };
}

/** The upstream for a request: the first route whose path and header conditions hold. */
export function pickUpstream(table: RoutingTable, req: { path: string; header(name: string): string | undefined }): { name: string; pool: UpstreamPool } | undefined {
  const kind = upstreamFor(req.path);
  for (const r of table.routes) {
    if (r.git && kind !== 'git') continue;
    if (r.prefix && !(req.path === r.prefix.replace(/\/$/, '') || req.path.startsWith(r.prefix))) continue;
    if (r.header && req.header(r.header.name) !== r.header.value) continue;
    return { name: r.upstream, pool: table.upstreams[r.upstream] };
  }
  return undefined;
}
