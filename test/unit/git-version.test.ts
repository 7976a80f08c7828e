import { gitVersionProblem } from '../../core/git';

// The git-server's start-up refuses a git older than it needs (assertGitVersion, from this verdict).

test('git 2.36 and later will do, as git prints its version on Debian, Windows and Apple builds', () => {
  for (const out of ['git version 2.39.5\n', 'git version 2.36.0', 'git version 2.45.1.windows.1', 'git version 2.39.3 (Apple Git-146)', 'git version 3.0.0']) {
    expect({ out, problem: gitVersionProblem(out) }).toEqual({ out, problem: undefined });
  }
});

test('an older git is refused, naming its version and the one needed', () => {
  expect(gitVersionProblem('git version 2.35.8')).toBe('git 2.35 is too old: the git-server needs git ≥ 2.36 (Debian bookworm has 2.39)');
  expect(gitVersionProblem('git version 1.99.9')).toBe('git 1.99 is too old: the git-server needs git ≥ 2.36 (Debian bookworm has 2.39)');
});

test('output that is no version is refused, quoted', () => {
  expect(gitVersionProblem('')).toBe('git version answered ""; git ≥ 2.36 is needed');
  expect(gitVersionProblem('sh: git: not found')).toBe('git version answered "sh: git: not found"; git ≥ 2.36 is needed');
});
