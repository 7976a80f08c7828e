/**
 * What a request to browse a repository may name (ADR 0034): a ref, checked with git's own rules
 * for ref names (`git check-ref-format`), and a path inside a tree. Pure checks, shared by the api's
 * schemas (a clear 400 at the edge) and the git-server (which never passes anything else to git).
 */

/** Largest file the raw route serves (bytes); bigger ones answer 413 (clone the repository instead). */
export const MAX_RAW_BYTES = 10 * 1024 * 1024;
/** Most entries a tree answer lists; the rest are left off (`truncated`). */
export const MAX_TREE_ENTRIES = 5000;
/** Most branches or tags one answer lists. */
export const MAX_REFS = 1000;
/** Most commits one answer lists. */
export const MAX_COMMITS = 100;

const FULL_ID = /^[0-9a-f]{40}$|^[0-9a-f]{64}$/;

/**
 * Why `ref` is not a name git accepts for a branch or tag (the rules of `git check-ref-format`,
 * one level allowed), or undefined. A full commit id is accepted too. Never an option (`-x`).
 */
export function refProblem(ref: string): string | undefined {
  if (FULL_ID.test(ref)) return undefined;
  if (ref.length === 0) return 'is empty';
  if (ref.length > 255) return 'is longer than 255 characters';
  if (ref.startsWith('-')) return 'starts with "-"';
  // 4, 5, 10: no control characters, space, ~ ^ : ? * [ or backslash.
  if (/[\x00-\x20\x7f~^:?*[\\]/.test(ref)) return 'contains a space, a control character or one of ~ ^ : ? * [ \\';
  if (ref.includes('..')) return 'contains ".."'; // 3
  if (ref.includes('@{')) return 'contains "@{"'; // 8
  if (ref === '@') return 'is "@"'; // 9
  if (ref.startsWith('/') || ref.endsWith('/') || ref.includes('//')) return 'has an empty component'; // 6
  if (ref.endsWith('.')) return 'ends with "."'; // 7
  // 1: no component starts with "." or ends with ".lock".
  if (ref.split('/').some((c) => c.startsWith('.') || c.endsWith('.lock'))) return 'has a component starting with "." or ending with ".lock"';
  return undefined;
}

/**
 * Why `path` is not a path inside a tree (`src/app.ts`), or undefined: relative, without empty,
 * `.` or `..` components, no control characters, at most 4096 characters. The root is `''`.
 */
export function treePathProblem(path: string): string | undefined {
  if (path === '') return undefined;
  if (path.length > 4096) return 'is longer than 4096 characters';
  if (/[\x00-\x1f\x7f]/.test(path)) return 'contains a control character';
  if (path.startsWith('/')) return 'starts with "/"';
  if (path.split('/').some((c) => c === '' || c === '.' || c === '..')) return 'has an empty, "." or ".." component';
  return undefined;
}
