import { z } from 'zod';

/** What a request is, for limiting: reads are cheap and many, writes and pushes are costly. */
export const ROUTE_CLASSES = ['api-read', 'api-write', 'git-fetch', 'git-push'] as const;
export type RouteClass = (typeof ROUTE_CLASSES)[number];

/** A request's query as express gives it (`req.query`), as URLSearchParams, or as a raw `a=b&c=d` string. */
export type QueryInput = string | URLSearchParams | Readonly<Record<string, unknown>> | undefined;

const REPO_PATH = /^\/[^/]+\/[^/]+\.git(\/.*)?$/;

/**
 * The route class of a request, or undefined for paths the gateway does not forward (those are not
 * limited here; they get a 404 anyway).
 * - `/api`, `/api/...`: GET/HEAD are `api-read`, every other method `api-write`.
 * - `<owner>/<repo>.git/git-receive-pack` and its advertisement `info/refs?service=git-receive-pack`: `git-push`.
 * - Every other path under a repository (`info/refs`, `git-upload-pack`, dumb HTTP, LFS transfers): `git-fetch`.
 *   LFS object uploads are counted as fetches on purpose: the push class's burst bucket is meant
 *   for pushes (each may run hooks and trigger a pipeline), and one LFS push is many requests.
 */
export function routeClass(method: string, path: string, query: QueryInput): RouteClass | undefined {
  if (path === '/api' || path.startsWith('/api/')) {
    const m = method.toUpperCase();
    return m === 'GET' || m === 'HEAD' ? 'api-read' : 'api-write';
  }
  const repo = REPO_PATH.exec(path);
  if (!repo) return undefined;
  const rest = repo[1] ?? '';
  if (rest === '/git-receive-pack') return 'git-push';
  if (rest === '/info/refs' && serviceParams(query).includes('git-receive-pack')) return 'git-push';
  return 'git-fetch';
}

function serviceParams(query: QueryInput): string[] {
  if (query === undefined) return [];
  if (typeof query === 'string') return new URLSearchParams(query.startsWith('?') ? query.slice(1) : query).getAll('service');
  if (query instanceof URLSearchParams) return query.getAll('service');
  const v = query.service; // express: a string, or an array when repeated
  return (Array.isArray(v) ? v : [v]).filter((s): s is string => typeof s === 'string');
}

const windowSchema = z.strictObject({
  limit: z.number().int().positive(),
  windowMs: z.number().int().positive(),
});
const bucketSchema = z.strictObject({
  capacity: z.number().int().positive(),
  ratePerSecond: z.number().positive(),
});
/**
 * One class's limits as configured: merged field by field over what it overrides (the defaults,
 * or for a tenant the platform-wide class), so `{ window: … }` alone keeps the bucket;
 * `bucket: null` removes one.
 */
const classEntrySchema = z.strictObject({
  window: windowSchema.optional(),
  bucket: bucketSchema.nullable().optional(),
});
const classEntries = z.strictObject(Object.fromEntries(ROUTE_CLASSES.map((c) => [c, classEntrySchema.optional()])) as Record<RouteClass, z.ZodOptional<typeof classEntrySchema>>);

/**
 * Limits configuration as written (JSON/YAML): per route class, plus per-tenant overrides by tenant
 * name, plus `auth-failure`: failed authentications per client address (brute-force protection).
 */
export const rateLimitConfigSchema = classEntries.extend({
  'auth-failure': z.strictObject({ window: windowSchema }).optional(),
  tenants: z.record(z.string().min(1), classEntries).optional(),
});
export type RateLimitConfigInput = z.input<typeof rateLimitConfigSchema>;

export type WindowLimit = z.infer<typeof windowSchema>;
export type BucketLimit = z.infer<typeof bucketSchema>;
/** A class's effective limits: every request must fit the window, and the bucket if there is one. */
export interface ClassLimits {
  window: WindowLimit;
  bucket?: BucketLimit;
}

/** The parsed configuration with every class resolved (defaults filled in, tenants merged). */
export interface RateLimitConfig {
  classes: Record<RouteClass, ClassLimits>;
  /** Only the classes a tenant overrides; the rest fall back to `classes`. */
  tenants: Record<string, Partial<Record<RouteClass, ClassLimits>>>;
  /** Failed authentications admitted per client address; past it, credentials from there are not checked (429). */
  authFailures: WindowLimit;
}

const MINUTE = 60_000;
/**
 * Per token (or IP) defaults: generous for reads (a UI or CI polling), tighter for writes; pushes
 * at most 60 a minute and, through the bucket, bursts of 10 smoothed to 1 per second.
 */
export const DEFAULT_CLASS_LIMITS: Readonly<Record<RouteClass, ClassLimits>> = {
  'api-read': { window: { limit: 600, windowMs: MINUTE } },
  'api-write': { window: { limit: 120, windowMs: MINUTE } },
  'git-fetch': { window: { limit: 300, windowMs: MINUTE } },
  'git-push': { window: { limit: 60, windowMs: MINUTE }, bucket: { capacity: 10, ratePerSecond: 1 } },
};

/**
 * Failed authentications per client address: enough for people mistyping and a CI fleet with a
 * stale token or two behind one address, far too few to guess a token (256 random bits) or probe
 * a JWT verifier. Tokens the gateway already knows (cached) keep working from a locked address.
 */
export const DEFAULT_AUTH_FAILURE_LIMIT: Readonly<WindowLimit> = { limit: 20, windowMs: MINUTE };

function merge(base: ClassLimits, entry: z.infer<typeof classEntrySchema> | undefined): ClassLimits {
  if (!entry) return base;
  const window = entry.window ?? base.window;
  const bucket = entry.bucket === undefined ? base.bucket : (entry.bucket ?? undefined);
  return bucket ? { window, bucket } : { window };
}

/** Validates a limits configuration (throws a ZodError naming the bad field) and resolves it. */
export function parseRateLimitConfig(input: unknown = {}): RateLimitConfig {
  const parsed = rateLimitConfigSchema.parse(input);
  const classes = Object.fromEntries(ROUTE_CLASSES.map((c) => [c, merge(DEFAULT_CLASS_LIMITS[c], parsed[c])])) as Record<RouteClass, ClassLimits>;
  const tenants: RateLimitConfig['tenants'] = {};
  for (const [tenant, entries] of Object.entries(parsed.tenants ?? {})) {
    const resolved: Partial<Record<RouteClass, ClassLimits>> = {};
    for (const c of ROUTE_CLASSES) if (entries[c]) resolved[c] = merge(classes[c], entries[c]);
    tenants[tenant] = resolved;
  }
  return { classes, tenants, authFailures: parsed['auth-failure']?.window ?? { ...DEFAULT_AUTH_FAILURE_LIMIT } };
}

/** The limits for a class, the tenant's override if it has one. */
export function limitsFor(config: RateLimitConfig, cls: RouteClass, tenant?: string): ClassLimits {
  const own = tenant !== undefined && Object.hasOwn(config.tenants, tenant) ? config.tenants[tenant][cls] : undefined;
  return own ?? config.classes[cls];
}

/**
 * Who a limit counts against: the token when the request is authenticated (so users behind one NAT
 * do not share a budget), else the client address. IPv4-mapped IPv6 addresses are unmapped so one
 * client is one subject whichever way the listener reports it.
 */
export function subjectFor(principal: { tokenId: number | string } | null | undefined, ip: string | undefined): string {
  if (principal) return `token:${principal.tokenId}`;
  const addr = ip?.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
  return `ip:${addr || 'unknown'}`;
}

export type Algorithm = 'window' | 'bucket';

/** Redis key of one subject's state for one algorithm and class (or the failed-authentication log). */
export function rateLimitKey(algo: Algorithm, cls: RouteClass | 'auth-failure', subject: string): string {
  return `dotgit:rl:${algo}:${cls}:${subject}`;
}
