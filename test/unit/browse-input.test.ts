import { execFileSync } from 'node:child_process';
import { refProblem, treePathProblem } from '../../core/browse-input';

// ADR 0034: the repository browser's ref check is git's own (check-ref-format, one level allowed),
// checked here against the git binary; paths have no empty, "." or ".." components.

const gitAccepts = (ref: string) => {
  try {
    execFileSync('git', ['check-ref-format', '--allow-onelevel', ref], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

const REFS = ['main', 'release/1.x', 'v1.0', 'feature/a-b_c', 'a..b', 'x.lock', 'a/x.lock/b', '.hidden', 'a/.b', 'a//b', '/a', 'a/', 'a.', 'a@{1}', '@', 'a b', 'a~1', 'a^', 'a:b', 'a?', 'a*', 'a[b', 'a\\b', 'a\tb', 'a\x7f', 'ü-umlaut', 'a@b', 'HEAD'];

test.each(REFS)('ref %j: accepted exactly when git check-ref-format accepts it', (ref) => {
  expect(refProblem(ref) === undefined).toBe(gitAccepts(ref));
});

test('full commit ids are accepted; options and empty or over-long names are not', () => {
  expect(refProblem('a'.repeat(40))).toBeUndefined();
  expect(refProblem('b'.repeat(64))).toBeUndefined();
  expect(refProblem('-x')).toMatch(/"-"/);
  expect(refProblem('')).toMatch(/empty/);
  expect(refProblem('a'.repeat(256))).toMatch(/255/);
});

test('tree paths: relative, no empty, "." or ".." components, no control characters', () => {
  for (const ok of ['', 'README.md', 'src/app.ts', 'docs/a b.txt', '.dotgit/pipeline.yml', 'a..b']) expect(treePathProblem(ok)).toBeUndefined();
  for (const bad of ['/etc/passwd', 'src/../x', '..', 'a/./b', 'a//b', 'a/', 'a\nb', 'x'.repeat(4097)]) expect(treePathProblem(bad)).toBeDefined();
});
