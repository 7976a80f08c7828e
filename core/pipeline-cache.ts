/**
 * Dependency caches of pipeline jobs (issue 17 item 3, ADR 0030): the `cache:` block of a job, its
 * key template (`${{ hashFiles('…') }}`), and the order a run looks for a cache to restore. Pure
 * code: the parser and the pipeline workflow import it (no I/O here).
 */
import { z } from 'zod';
import { expressions, parseReference, substitute } from './pipeline-matrix';

/** At most this many paths and restore keys per job; keys up to 512 characters (GitHub's limit). */
const MAX_CACHE_PATHS = 100;
const MAX_RESTORE_KEYS = 20;
export const MAX_CACHE_KEY = 512;

/** C0 controls and DEL: as for every other text of the pipeline file (core/pipeline-spec.ts). */
const CONTROL = /[\x00-\x1f\x7f]/;
const line = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((s) => !CONTROL.test(s), 'control characters are not allowed');

/** `cache: {key, paths, restore-keys}` as written in the file. */
export const cacheSchema = z.strictObject({
  key: line(MAX_CACHE_KEY),
  paths: z.array(line(1024)).min(1, 'a cache needs at least one path').max(MAX_CACHE_PATHS, `at most ${MAX_CACHE_PATHS} paths`),
  'restore-keys': z.array(line(MAX_CACHE_KEY)).max(MAX_RESTORE_KEYS, `at most ${MAX_RESTORE_KEYS} restore keys`).optional(),
});

/** A job's cache as the spec keeps it: `key` may still hold `${{ hashFiles(…) }}` (resolved on the host, over the checkout). */
export interface CacheSpec {
  key: string;
  paths: string[];
  restoreKeys: string[];
}

export function cacheOf(raw: z.infer<typeof cacheSchema>): CacheSpec {
  return { key: raw.key, paths: raw.paths.map(normalizeCachePath), restoreKeys: raw['restore-keys'] ?? [] };
}

/** `./node_modules/` → `node_modules`. */
function normalizeCachePath(p: string): string {
  return p.split('/').filter((s) => s !== '' && s !== '.').join('/');
}

const HASH_FILES = /^hashFiles\(\s*('[^']*'(?:\s*,\s*'[^']*')*)\s*\)$/;

/** The patterns of a `hashFiles('a', 'b')` expression, or undefined for any other expression. */
export function hashFilesPatterns(expr: string): string[] | undefined {
  const m = HASH_FILES.exec(expr);
  if (!m) return undefined;
  return [...m[1].matchAll(/'([^']*)'/g)].map((p) => p[1]);
}

/**
 * What is wrong with a job's cache, as `[path within cache, problem]`, or undefined: a path that
 * leaves the workspace (absolute, `~`, or through `..`), a key expression other than `matrix.*` and
 * `hashFiles('…')` (patterns relative to the workspace too).
 */
export function cacheProblem(raw: z.infer<typeof cacheSchema>): [PropertyKey[], string] | undefined {
  for (const [i, p] of raw.paths.entries()) {
    if (p.startsWith('/') || p.startsWith('~')) return [['paths', i], `cache path "${p}" escapes the workspace: paths are relative to /workspace (absolute and ~ paths are not cached)`];
    if (p.split('/').includes('..')) return [['paths', i], `cache path "${p}" escapes the workspace through ".."`];
    if (normalizeCachePath(p) === '') return [['paths', i], `cache path "${p}" names the whole workspace; name the folders to cache`];
  }
  const keys: [PropertyKey[], string][] = [[['key'], raw.key], ...(raw['restore-keys'] ?? []).map((k, i): [PropertyKey[], string] => [['restore-keys', i], k])];
  for (const [where, text] of keys) {
    for (const expr of expressions(text)) {
      if (parseReference(expr)?.kind === 'matrix') continue;
      const patterns = hashFilesPatterns(expr);
      if (!patterns || where[0] !== 'key') return [where, `\${{ ${expr} }}: a cache key may use matrix.<key> and (in key) hashFiles('pattern', …) only`];
      const bad = patterns.find((p) => p === '' || p.startsWith('/') || p.split('/').includes('..'));
      if (bad !== undefined) return [where, `\${{ ${expr} }}: hashFiles patterns are relative to the workspace, without ".." ("${bad}")`];
    }
  }
  return undefined;
}

/** The key with each `${{ hashFiles(…) }}` replaced by `hash(patterns)` (empty when no file matches, as GitHub does). */
export function resolveCacheKey(template: string, hash: (patterns: string[]) => string): string {
  return substitute(template, (expr) => {
    const patterns = hashFilesPatterns(expr);
    return patterns ? hash(patterns) : undefined;
  });
}

/** Where a run looks for a cache to restore, in order: a ref and an exact key or a key prefix. */
export interface CacheCandidate {
  ref: string;
  key: string;
  prefix: boolean;
}

/**
 * GitHub's order: in the run's own ref the exact key, then each restore key as a prefix (newest
 * match first); then the same in the repository's default branch. Caches of other branches are
 * never visible, so a branch cannot poison another's.
 */
export function restoreCandidates(key: string, restoreKeys: string[], ref: string, defaultBranch: string | undefined): CacheCandidate[] {
  const refs = [ref];
  const base = defaultBranch ? `refs/heads/${defaultBranch}` : undefined;
  if (base && base !== ref) refs.push(base);
  const out: CacheCandidate[] = [];
  for (const r of refs) {
    for (const [k, prefix] of [[key, false] as const, ...restoreKeys.map((rk) => [rk, true] as const)]) out.push({ ref: r, key: k, prefix });
  }
  return out;
}

/** Object-store key of a saved cache archive. */
export function cacheObjectKey(tenantId: number, repoId: number, name: string): string {
  return `caches/${tenantId}/${repoId}/${name}.tar.gz`;
}
