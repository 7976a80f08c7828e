import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { commitAndFile, FileTooLargeError } from '../../core/git';
import { headBranch } from '../../git-server/default-branch';

// What recording a push reads for each ref (ADR 0047): the commit a pushed object peels to and the
// pipeline file at it, from a real repository with the real git.

let dir: string;
let gitDir: string;
const git = (...args: string[]) => execFileSync('git', args, { cwd: dir, encoding: 'utf8', env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@x', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@x' } }).trim();

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'commit-and-file-'));
  git('init', '--quiet', '--initial-branch=main');
  gitDir = path.join(dir, '.git');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function commit(files: Record<string, string>, message: string): string {
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  git('add', '-A');
  git('commit', '--quiet', '--allow-empty', '-m', message);
  return git('rev-parse', 'HEAD');
}

test('a commit with the file: its id and the text', async () => {
  const sha = commit({ '.dotgit/pipeline.yml': 'jobs: {}\n' }, 'with');
  expect(await commitAndFile(gitDir, sha, '.dotgit/pipeline.yml', 1000)).toEqual({ commit: sha, text: 'jobs: {}\n' });
});

test('a commit without the file: its id and no text', async () => {
  git('rm', '--quiet', '-r', '.dotgit');
  const sha = commit({}, 'without');
  expect(await commitAndFile(gitDir, sha, '.dotgit/pipeline.yml', 1000)).toEqual({ commit: sha });
});

test('an annotated tag peels to its commit', async () => {
  const sha = commit({ '.dotgit/pipeline.yml': 'jobs: {}\n' }, 'tagged');
  git('tag', '-a', '-m', 'v1', 'v1');
  const tag = git('rev-parse', 'v1');
  expect(tag).not.toBe(sha);
  expect(await commitAndFile(gitDir, tag, '.dotgit/pipeline.yml', 1000)).toEqual({ commit: sha, text: 'jobs: {}\n' });
});

test('a file over the limit is not read: the answer says it is too large', async () => {
  const sha = commit({ '.dotgit/pipeline.yml': 'x'.repeat(2000) }, 'big');
  const found = await commitAndFile(gitDir, sha, '.dotgit/pipeline.yml', 1000);
  expect(found?.commit).toBe(sha);
  expect(found?.text).toBeUndefined();
  expect(found?.tooLarge).toBeInstanceOf(FileTooLargeError);
  expect(found?.tooLarge?.message).toBe('.dotgit/pipeline.yml is 2000 bytes; at most 1000 are allowed');
});

test('a directory by the file name is no file; a long commit message changes nothing', async () => {
  git('rm', '--quiet', '-r', '.dotgit');
  mkdirSync(path.join(dir, '.dotgit/pipeline.yml'), { recursive: true });
  writeFileSync(path.join(dir, '.dotgit/pipeline.yml/inner'), 'x');
  const sha = commit({}, 'm'.repeat(100_000));
  expect(await commitAndFile(gitDir, sha, '.dotgit/pipeline.yml', 1000)).toEqual({ commit: sha });
  git('rm', '--quiet', '-r', '.dotgit');
  const again = commit({ '.dotgit/pipeline.yml': 'y'.repeat(999) }, 'l'.repeat(100_000));
  expect(await commitAndFile(gitDir, again, '.dotgit/pipeline.yml', 1000)).toEqual({ commit: again, text: 'y'.repeat(999) });
});

test('a file far over the limit answers from its size alone', async () => {
  const sha = commit({ '.dotgit/pipeline.yml': 'z'.repeat(8 * 1024 * 1024) }, 'huge');
  const found = await commitAndFile(gitDir, sha, '.dotgit/pipeline.yml', 1000);
  expect(found).toEqual({ commit: sha, tooLarge: expect.any(FileTooLargeError) });
  expect(found?.tooLarge?.message).toBe(`.dotgit/pipeline.yml is ${8 * 1024 * 1024} bytes; at most 1000 are allowed`);
});

test('a file of exactly the limit is read; an empty one is empty text; a path with spaces is one path', async () => {
  const sha = commit({ '.dotgit/pipeline.yml': 'e'.repeat(1000), 'dir with space/a b.yml': '', 'x.yml': 'spaced' }, 'edges');
  expect(await commitAndFile(gitDir, sha, '.dotgit/pipeline.yml', 1000)).toEqual({ commit: sha, text: 'e'.repeat(1000) });
  expect(await commitAndFile(gitDir, sha, 'dir with space/a b.yml', 1000)).toEqual({ commit: sha, text: '' });
  // A tag of a tree peels to no commit.
  git('tag', '-a', '-m', 'tree', 'treetag', `${sha}^{tree}`);
  expect(await commitAndFile(gitDir, git('rev-parse', 'treetag'), '.dotgit/pipeline.yml', 1000)).toBeUndefined();
});

test('a path with a line break is refused, not sent to git as two commands', async () => {
  const sha = git('rev-parse', 'HEAD');
  await expect(commitAndFile(gitDir, sha, `x.yml\ncontents ${sha}`, 1000)).rejects.toThrow('not a path git can be asked for on one line');
});

test('no repository at the path: as if the commit were unknown', async () => {
  expect(await commitAndFile(path.join(dir, 'nowhere.git'), 'a'.repeat(40), '.dotgit/pipeline.yml', 1000)).toBeUndefined();
});

test('a blob or an unknown object is not a commit', async () => {
  const blob = git('rev-parse', 'HEAD:.dotgit/pipeline.yml');
  expect(await commitAndFile(gitDir, blob, '.dotgit/pipeline.yml', 1000)).toBeUndefined();
  expect(await commitAndFile(gitDir, 'f'.repeat(40), '.dotgit/pipeline.yml', 1000)).toBeUndefined();
  await expect(commitAndFile(gitDir, 'HEAD', '.dotgit/pipeline.yml', 1000)).rejects.toThrow('not an object id: HEAD');
});

test('HEAD is read from its file, and from git when the file does not name a branch', async () => {
  expect(await headBranch(gitDir)).toBe('main');
  git('symbolic-ref', 'HEAD', 'refs/heads/trunk');
  expect(await headBranch(gitDir)).toBe('trunk');
  git('checkout', '--quiet', '--detach', 'main');
  expect(await headBranch(gitDir)).toBeUndefined();
});
