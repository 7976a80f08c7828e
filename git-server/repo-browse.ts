import { spawn } from 'node:child_process';
import express, { type Request } from 'express';
import { AuthenticationError, InputError, NotFoundError, PayloadTooLargeError } from '../core/errors';
import { repoPath, resolveRef, runGit } from '../core/git';
import { route } from '../core/http';
import { SERVICE_HEADER, verifyServiceToken } from '../core/internal-identity';
import { assertValidName } from '../core/names';
import { MAX_COMMITS, MAX_RAW_BYTES, MAX_REFS, MAX_TREE_ENTRIES, refProblem, treePathProblem } from '../core/browse-input';
import { headBranch } from './default-branch';

/**
 * Reading a repository for the api's browser (ADR 0034): its branches and tags, a ref's history, a
 * tree and a file's bytes. Internal routes under `/internal/repos/…` (service token; the gateway
 * forwards no `/internal/…` path) taking `{owner, name, …}` as JSON, so the node router sends each to
 * the node holding the repository, as it does `resolve` and `pipeline-file`. The api has already
 * checked that the caller may read the repository; only read-only git commands run here, on names
 * checked by core/browse-input.ts, paths as literal pathspecs.
 */

/** Pathspecs are literal: a `*` or `:(glob)` in a file name is that name. */
const LITERAL = { GIT_LITERAL_PATHSPECS: '1' };

interface Target {
  gitDir: string;
  what: string;
}

/** The repository a request names, once its service token is checked. */
async function target(req: Request, o: { reposDir: string; internalSecret: string }): Promise<Target> {
  await verifyServiceToken(o.internalSecret, req.header(SERVICE_HEADER)).catch((e: Error) => {
    throw new AuthenticationError(e.message);
  });
  const owner = assertValidName('owner', req.body?.owner);
  const name = assertValidName('name', req.body?.name);
  return { gitDir: repoPath(o.reposDir, owner, name), what: `${owner}/${name}` };
}

/** The commit a request names: its `ref` (a branch, tag or full id), or HEAD's branch when absent. */
async function commitOf(t: Target, ref: unknown): Promise<{ ref: string; commit: string }> {
  let name: string;
  if (ref === undefined || ref === null || ref === '') {
    const head = await headBranch(t.gitDir);
    if (!head) throw new NotFoundError(`${t.what} has no default branch`);
    name = head;
  } else if (typeof ref !== 'string') {
    throw new InputError('ref must be a string');
  } else {
    const problem = refProblem(ref);
    if (problem) throw new InputError(`ref ${problem}`);
    name = ref;
  }
  const found = await resolveRef(t.gitDir, name);
  if (!found) throw new NotFoundError(`ref ${JSON.stringify(name.slice(0, 100))} not found in ${t.what}`);
  return found;
}

function pathOf(value: unknown): string {
  const path = value === undefined ? '' : value;
  if (typeof path !== 'string') throw new InputError('path must be a string');
  const problem = treePathProblem(path);
  if (problem) throw new InputError(`path ${problem}`);
  return path;
}

export interface TreeEntry {
  name: string;
  path: string;
  type: 'tree' | 'blob' | 'symlink' | 'submodule';
  mode: string;
  sha: string;
  size: number | null;
}

/** One `ls-tree -l -z` record: `<mode> <type> <oid> <size>\t<name>`. */
function parseEntry(record: string, dir: string): TreeEntry {
  const tab = record.indexOf('\t');
  const [mode, kind, sha, size] = record.slice(0, tab).split(/ +/);
  const name = record.slice(tab + 1);
  const type = kind === 'tree' ? 'tree' : kind === 'commit' ? 'submodule' : mode === '120000' ? 'symlink' : 'blob';
  return { name, path: dir ? `${dir}/${name}` : name, type, mode, sha, size: size === '-' ? null : Number(size) };
}

/** The entry at `path` of `commit` (the root tree for ''), or undefined when there is none. */
async function entryAt(gitDir: string, commit: string, path: string): Promise<TreeEntry | undefined> {
  if (path === '') {
    const r = await runGit(['--git-dir', gitDir, 'rev-parse', '--verify', '--quiet', `${commit}^{tree}`]);
    return r.code === 0 ? { name: '', path: '', type: 'tree', mode: '040000', sha: r.stdout.toString().trim(), size: null } : undefined;
  }
  const r = await runGit(['--git-dir', gitDir, 'ls-tree', '-z', '-l', '--full-tree', commit, '--', path], { env: LITERAL });
  if (r.code !== 0) throw new Error(`git ls-tree in ${gitDir}: ${r.stderr}`);
  const record = r.stdout.toString('utf8').split('\0')[0];
  if (!record) return undefined;
  // Asked for by path, ls-tree names the entry by its whole path (literal pathspec, no trailing slash).
  const entry = parseEntry(record, '');
  return entry.path === path ? { ...entry, name: path.split('/').pop() ?? path } : undefined;
}

const ORDER = { tree: 0, submodule: 1, symlink: 2, blob: 2 };

const LOG_FORMAT = ['%H', '%P', '%an', '%ae', '%aI', '%cn', '%ce', '%cI', '%s'].join('%x1f') + '%x1e';

export function createRepoBrowseRoutes(o: { reposDir: string; internalSecret: string }): express.Router {
  const router = express.Router();
  const open = (req: Request) => target(req, o);

  // `{kind: 'branches' | 'tags'}` → the refs by name, each with the commit it names and that commit's date.
  router.post('/internal/repos/refs', express.json(), route(async (req, res) => {
    const t = await open(req);
    const kind = req.body?.kind;
    if (kind !== 'branches' && kind !== 'tags') throw new InputError('kind must be branches or tags');
    const prefix = kind === 'branches' ? 'refs/heads/' : 'refs/tags/';
    // A tag's commit is its peeled object (annotated tags), a branch's its object.
    const format = '%(refname)%00%(if)%(*objectname)%(then)%(*objectname)%(else)%(objectname)%(end)%00%(if)%(*objectname)%(then)%(*committerdate:iso-strict)%(else)%(committerdate:iso-strict)%(end)';
    const r = await runGit(['--git-dir', t.gitDir, 'for-each-ref', `--count=${MAX_REFS + 1}`, `--format=${format}`, prefix.slice(0, -1)]);
    if (r.code !== 0) throw new NotFoundError(`repository ${t.what} not found on this node`);
    const refs = r.stdout
      .toString('utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [ref, commit, date] = line.split('\0');
        return { name: ref.slice(prefix.length), commit, committedAt: date || null };
      });
    res.json({ head: (await headBranch(t.gitDir)) ?? null, refs: refs.slice(0, MAX_REFS), truncated: refs.length > MAX_REFS });
  }));

  // `{ref?, limit?}` → the ref's history, newest first (first parents and merges alike, as `git log`).
  router.post('/internal/repos/log', express.json(), route(async (req, res) => {
    const t = await open(req);
    const limit = req.body?.limit ?? 30;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_COMMITS) throw new InputError(`limit must be 1 to ${MAX_COMMITS}`);
    const at = await commitOf(t, req.body?.ref);
    const r = await runGit(['--git-dir', t.gitDir, 'log', `--format=${LOG_FORMAT}`, `--max-count=${limit}`, at.commit, '--']);
    if (r.code !== 0) throw new Error(`git log in ${t.gitDir}: ${r.stderr}`);
    const commits = r.stdout
      .toString('utf8')
      .split('\x1e')
      .map((s) => s.replace(/^\n/, ''))
      .filter(Boolean)
      .map((s) => {
        const [sha, parents, an, ae, ad, cn, ce, cd, subject] = s.split('\x1f');
        return { sha, parents: parents ? parents.split(' ') : [], author: { name: an, email: ae, date: ad }, committer: { name: cn, email: ce, date: cd }, subject };
      });
    res.json({ ...at, commits });
  }));

  // `{ref?, path}` → a directory's entries (directories first, then by name), or a file's size and id.
  router.post('/internal/repos/tree', express.json(), route(async (req, res) => {
    const t = await open(req);
    const path = pathOf(req.body?.path);
    const at = await commitOf(t, req.body?.ref);
    const entry = await entryAt(t.gitDir, at.commit, path);
    if (!entry) throw new NotFoundError(`path ${JSON.stringify(path.slice(0, 200))} not found at ${at.ref} in ${t.what}`);
    if (entry.type !== 'tree') {
      res.json({ ...at, path, type: entry.type, mode: entry.mode, sha: entry.sha, size: entry.size, entries: null, truncated: false });
      return;
    }
    const r = await runGit(['--git-dir', t.gitDir, 'ls-tree', '-z', '-l', entry.sha]);
    if (r.code !== 0) throw new Error(`git ls-tree in ${t.gitDir}: ${r.stderr}`);
    const all = r.stdout.toString('utf8').split('\0').filter(Boolean).map((rec) => parseEntry(rec, path));
    all.sort((a, b) => ORDER[a.type] - ORDER[b.type] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    res.json({ ...at, path, type: 'tree', mode: entry.mode, sha: entry.sha, size: null, entries: all.slice(0, MAX_TREE_ENTRIES), truncated: all.length > MAX_TREE_ENTRIES });
  }));

  // `{ref?, path}` → a file's bytes, streamed (at most MAX_RAW_BYTES; a symlink's are its target).
  router.post('/internal/repos/blob', express.json(), route(async (req, res) => {
    const t = await open(req);
    const path = pathOf(req.body?.path);
    const at = await commitOf(t, req.body?.ref);
    const entry = path === '' ? undefined : await entryAt(t.gitDir, at.commit, path);
    if (!entry || entry.type === 'tree' || entry.type === 'submodule') throw new NotFoundError(`file ${JSON.stringify(path.slice(0, 200))} not found at ${at.ref} in ${t.what}`);
    if ((entry.size ?? 0) > MAX_RAW_BYTES) throw new PayloadTooLargeError(`${path} is ${entry.size} bytes; files of at most ${MAX_RAW_BYTES} bytes are served (clone the repository for it)`);
    res.setHeader('content-type', 'application/octet-stream');
    res.setHeader('content-length', String(entry.size ?? 0));
    res.setHeader('x-dotgit-commit', at.commit);
    const child = spawn('git', ['--git-dir', t.gitDir, 'cat-file', 'blob', entry.sha], { stdio: ['ignore', 'pipe', 'ignore'] });
    res.on('close', () => child.kill());
    child.stdout.pipe(res);
    await new Promise<void>((resolve) => child.on('close', () => resolve()));
  }));
  return router;
}
