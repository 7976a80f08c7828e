import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startPushReads, updateKey } from '../../git-server/push-recorder';

// Recording a push classifies each update for the audit entry (ADR 0047 item 4): one pre-receive
// found fast-forward is taken as an update without asking git; any other is asked of git. Shown
// with a rewrite that git calls a force: told it was fast-forward, the shortcut answers update.

let dir: string;
let gitDir: string;
const git = (...args: string[]) => execFileSync('git', args, { cwd: dir, encoding: 'utf8', env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@x', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@x' } }).trim();
let base: string;
let rewritten: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'push-reads-'));
  git('init', '--quiet', '--initial-branch=main');
  gitDir = path.join(dir, '.git');
  git('commit', '--quiet', '--allow-empty', '-m', 'one');
  base = git('rev-parse', 'HEAD');
  git('commit', '--quiet', '--amend', '--allow-empty', '-m', 'one, rewritten');
  rewritten = git('rev-parse', 'HEAD');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ZERO = '0'.repeat(40);

test('without word from pre-receive, git decides: a rewrite is a force', async () => {
  const updates = [
    { ref: 'refs/heads/main', oldSha: base, newSha: rewritten },
    { ref: 'refs/heads/new', oldSha: ZERO, newSha: base },
    { ref: 'refs/heads/gone', oldSha: base, newSha: ZERO },
  ];
  const kinds = await startPushReads(gitDir, updates, { skipPipelines: true }).kinds;
  expect(Object.fromEntries(kinds)).toEqual({ 'refs/heads/main': 'force', 'refs/heads/new': 'create', 'refs/heads/gone': 'delete' });
});

test("an update pre-receive found fast-forward is taken at its word; another one's word does not count", async () => {
  const update = { ref: 'refs/heads/main', oldSha: base, newSha: rewritten };
  const told = await startPushReads(gitDir, [update], { skipPipelines: true, fastForwards: new Set([updateKey(update)]) }).kinds;
  expect(told.get('refs/heads/main')).toBe('update');
  // The same ref from another old commit is another update: git is asked.
  const other = await startPushReads(gitDir, [update], { skipPipelines: true, fastForwards: new Set([updateKey({ ...update, oldSha: rewritten })]) }).kinds;
  expect(other.get('refs/heads/main')).toBe('force');
});

test('pipeline files are read for branch and tag updates only, in push order, past the read-ahead', async () => {
  const updates = [...Array(7).keys()].map((i) => ({ ref: `refs/tags/t${i}`, oldSha: ZERO, newSha: base }));
  const reads = startPushReads(gitDir, [...updates, { ref: 'refs/notes/x', oldSha: ZERO, newSha: base }, { ref: 'refs/heads/gone', oldSha: base, newSha: ZERO }]);
  expect(reads.candidates.map((u) => u.ref)).toEqual(updates.map((u) => u.ref));
  for (const [i, u] of reads.candidates.entries()) {
    reads.readAhead(i + 4);
    expect(await reads.fileAt(u.newSha)).toEqual({ commit: base });
  }
});
