import { promises as fs } from 'node:fs';
import path from 'node:path';
import express from 'express';
import { inTransaction, type Db } from '../core/db';
import { AuthenticationError, InputError, NotFoundError } from '../core/errors';
import { repoPath, runGit } from '../core/git';
import { route } from '../core/http';
import { SERVICE_HEADER, verifyServiceToken } from '../core/internal-identity';
import { assertValidName } from '../core/names';
import { findRepo } from '../core/repos';
import { recordDefaultBranch } from '../core/stores/default-branch-store';
import { recordRepoSchedules } from '../core/stores/schedules-store';
import { cronsAt } from './schedule-sync';

/**
 * A repository's default branch is its HEAD (issue 15 item 5): what `git clone` checks out, what
 * webhooks report as `default_branch`. Created repositories point HEAD at `main`; a first push of
 * another branch, or a change through the api, points it elsewhere. `repos.default_branch` keeps a
 * copy for the api (core/stores/default-branch-store.ts).
 */

const ZERO = /^0+$/;

/** True when `refs/heads/<branch>` exists in the repository. */
async function branchExists(gitDir: string, branch: string): Promise<boolean> {
  return (await runGit(['--git-dir', gitDir, 'rev-parse', '--verify', '--quiet', `refs/heads/${branch}^{commit}`])).code === 0;
}

/** The branch HEAD names (`main`), whether or not it exists yet; undefined for a detached HEAD. */
export async function headBranch(gitDir: string): Promise<string | undefined> {
  // Our repositories keep refs in files, HEAD among them: reading it saves a git process on every
  // push. Anything else (a reftable repository's placeholder HEAD, a detached one) asks git.
  const file = await fs.readFile(path.join(gitDir, 'HEAD'), 'utf8').catch(() => '');
  const named = /^ref: refs\/heads\/(\S+)\n?$/.exec(file)?.[1];
  if (named !== undefined && named !== '.invalid') return named;
  const r = await runGit(['--git-dir', gitDir, 'symbolic-ref', '-q', 'HEAD']);
  const ref = r.code === 0 ? r.stdout.toString().trim() : '';
  return ref.startsWith('refs/heads/') ? ref.slice('refs/heads/'.length) : undefined;
}

/** Refuses a name git would not take as a branch, or that reads as an option (`-x`). */
async function assertBranchName(branch: string): Promise<void> {
  const ok = branch.length > 0 && branch.length <= 255 && !branch.split('/').some((p) => p.startsWith('-')) && (await runGit(['check-ref-format', `refs/heads/${branch}`])).code === 0;
  if (!ok) throw new InputError(`defaultBranch must be a branch name git accepts: ${JSON.stringify(branch.slice(0, 100))} is not one`);
}

/**
 * After a push: when HEAD names a branch that does not exist (an empty repository's `main` while
 * `master` was pushed), HEAD moves to a branch this push created, so clones check out files
 * instead of warning "remote HEAD refers to nonexistent ref". Of several, `main`, then `master`,
 * then the first in push order (git sends them sorted by name). Answers the new default, if changed.
 */
export async function adoptPushedBranch(gitDir: string, updates: { ref: string; oldSha: string; newSha: string }[], refs?: Record<string, string>): Promise<string | undefined> {
  const head = await headBranch(gitDir);
  // The push's refs, when the caller has read them already, answer without a git process.
  if (head !== undefined && (refs ? `refs/heads/${head}` in refs : await branchExists(gitDir, head))) return undefined;
  const created = updates
    .filter((u) => u.ref.startsWith('refs/heads/') && ZERO.test(u.oldSha) && !ZERO.test(u.newSha))
    .map((u) => u.ref.slice('refs/heads/'.length));
  const ordered = [...created.filter((b) => b === 'main'), ...created.filter((b) => b === 'master'), ...created];
  for (const branch of ordered) {
    if (!(await branchExists(gitDir, branch))) continue; // deleted again by a later command of the push
    const r = await runGit(['--git-dir', gitDir, 'symbolic-ref', 'HEAD', `refs/heads/${branch}`]);
    if (r.code !== 0) throw new Error(`git symbolic-ref in ${gitDir}: ${r.stderr}`);
    return branch;
  }
  return undefined;
}

/** Points HEAD at an existing branch; NotFoundError when there is no such branch. */
export async function setHeadBranch(gitDir: string, branch: string, what: string): Promise<void> {
  await assertBranchName(branch);
  if (!(await branchExists(gitDir, branch))) throw new NotFoundError(`branch ${JSON.stringify(branch.slice(0, 100))} not found in ${what}`);
  const r = await runGit(['--git-dir', gitDir, 'symbolic-ref', 'HEAD', `refs/heads/${branch}`]);
  if (r.code !== 0) throw new Error(`git symbolic-ref in ${gitDir}: ${r.stderr}`);
}

/**
 * `POST /internal/repos/default-branch {owner, name, branch}` (the api's PATCH of a repository,
 * service token): HEAD on this node, then the recorded copy. The node router sends it to the node
 * holding the repository. 404 for a branch the repository does not have.
 */
export function createDefaultBranchRoute(o: {
  db: Db;
  /** The database of the named tenant's shard (ADR 0025); default `db`. */
  dbOfOwner?: (owner: string) => Promise<Db>;
  reposDir: string;
  internalSecret: string;
  onChanged: (repo: string) => Promise<void>;
}) {
  const router = express.Router();
  router.post('/internal/repos/default-branch', express.json(), route(async (req, res) => {
    await verifyServiceToken(o.internalSecret, req.header(SERVICE_HEADER)).catch((e: Error) => {
      throw new AuthenticationError(e.message);
    });
    const owner = assertValidName('owner', req.body?.owner);
    const name = assertValidName('name', req.body?.name);
    const branch: unknown = req.body?.branch;
    if (typeof branch !== 'string') throw new InputError('branch must be a string');
    const db = o.dbOfOwner ? await o.dbOfOwner(owner) : o.db;
    const repo = await findRepo(db, owner, name);
    if (!repo) throw new NotFoundError(`repository ${owner}/${name} not found`);
    const gitDir = repoPath(o.reposDir, owner, name);
    await setHeadBranch(gitDir, branch, `${owner}/${name}`);
    // Scheduled pipelines are the default branch's (issue 17 item 6): from now on its head's file
    // declares them and their runs are of it, as after a push to it (an invalid file keeps the last).
    const head = (await runGit(['--git-dir', gitDir, 'rev-parse', '--verify', `refs/heads/${branch}^{commit}`])).stdout.toString().trim();
    const crons = await cronsAt(gitDir, head);
    await inTransaction(db, async (c) => {
      await recordDefaultBranch(c, repo.id, branch);
      if (crons) await recordRepoSchedules(c, { tenantId: repo.tenantId, repoId: repo.id, owner, repo: name, ref: `refs/heads/${branch}`, commit: head, crons });
    });
    // The ref advertisement names HEAD's target: cached ones are stale now.
    await o.onChanged(`${owner}/${name}`);
    res.json({ defaultBranch: branch });
  }));
  return router;
}
