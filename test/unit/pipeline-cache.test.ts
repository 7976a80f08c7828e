import { hashFilesPatterns, resolveCacheKey, restoreCandidates } from '../../core/pipeline-cache';
import { parsePipeline } from '../../core/pipeline-spec';
import { pipelineErrorOf } from '../helpers/pipeline';

// Issue 17 item 3: the `cache:` block as the parser checks it, the key template, and the lookup order.

const job = (cache: string) => `jobs:\n  deps:\n    cache: ${cache}\n    steps: [{ run: "true" }]\n`;

test('a cache block is kept on the job; matrix values are filled into its keys, hashFiles is left for the host', () => {
  const spec = parsePipeline(`
jobs:
  deps:
    matrix: { node: [18, 20] }
    cache: { key: "deps-\${{ matrix.node }}-\${{ hashFiles('package-lock.json', '**/yarn.lock') }}", paths: [./node_modules/, .cache/pip], restore-keys: ["deps-\${{ matrix.node }}-"] }
    steps: [{ run: "true" }]
`);
  expect(spec.jobs.map((j) => j.cache)).toEqual([
    { key: "deps-18-${{ hashFiles('package-lock.json', '**/yarn.lock') }}", paths: ['node_modules', '.cache/pip'], restoreKeys: ['deps-18-'] },
    { key: "deps-20-${{ hashFiles('package-lock.json', '**/yarn.lock') }}", paths: ['node_modules', '.cache/pip'], restoreKeys: ['deps-20-'] },
  ]);
});

test.each([
  ['{ key: k, paths: [/etc] }', 'jobs.deps.cache.paths.0: cache path "/etc" escapes the workspace: paths are relative to /workspace'],
  ['{ key: k, paths: [~/.npm] }', 'jobs.deps.cache.paths.0: cache path "~/.npm" escapes the workspace'],
  ['{ key: k, paths: [a, "b/../../c"] }', 'jobs.deps.cache.paths.1: cache path "b/../../c" escapes the workspace through ".."'],
  ['{ key: k, paths: [.] }', 'jobs.deps.cache.paths.0: cache path "." names the whole workspace'],
  ['{ key: "${{ secrets.X }}", paths: [a] }', "jobs.deps.cache.key: ${{ secrets.X }}: a cache key may use matrix.<key> and (in key) hashFiles('pattern', …) only"],
  ['{ key: "${{ hashFiles(\'../x\') }}", paths: [a] }', 'jobs.deps.cache.key: ${{ hashFiles(\'../x\') }}: hashFiles patterns are relative to the workspace'],
  ['{ key: k, paths: [] }', 'jobs.deps.cache.paths: a cache needs at least one path'],
  ['{ key: k, paths: [a], size: 1 }', 'jobs.deps.cache'],
])('cache %s is refused with line and field', (cache, problem) => {
  const { message } = pipelineErrorOf(job(cache));
  expect(message).toMatch(/^\.dotgit\/pipeline\.yml:3:\d+: /);
  expect(message).toContain(problem);
});

test('hashFiles patterns and key resolution', () => {
  expect(hashFilesPatterns("hashFiles('a', 'b/**/c')")).toEqual(['a', 'b/**/c']);
  expect(hashFilesPatterns('hashFiles(a)')).toBeUndefined();
  expect(resolveCacheKey("deps-${{ hashFiles('a') }}-${{ other }}", (p) => `H(${p.join('+')})`)).toBe('deps-H(a)-${{ other }}');
});

test('lookup order: own ref (key, then restore keys), then the default branch; the default branch only once', () => {
  const order = (ref: string, def?: string) => restoreCandidates('k1', ['k-'], ref, def).map((c) => `${c.ref} ${c.key}${c.prefix ? '*' : ''}`);
  expect(order('refs/heads/feature', 'main')).toEqual(['refs/heads/feature k1', 'refs/heads/feature k-*', 'refs/heads/main k1', 'refs/heads/main k-*']);
  expect(order('refs/heads/main', 'main')).toEqual(['refs/heads/main k1', 'refs/heads/main k-*']);
  expect(order('refs/tags/v1', undefined)).toEqual(['refs/tags/v1 k1', 'refs/tags/v1 k-*']);
});
