import express, { type Request } from 'express';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Db } from '../core/db';
import { AuthenticationError, ConflictError, InputError, NotAllowedError, NotFoundError } from '../core/errors';
import { repoPath, runGit } from '../core/git';
import { route } from '../core/http';
import { SERVICE_HEADER, signServiceToken, verifyServiceToken } from '../core/internal-identity';
import type { Logger } from '../core/logger';
import { assertValidName } from '../core/names';
import { isRepository, readRefs } from '../core/replica-sync';
import { MOVE_SERVICE, moveStateByName } from '../core/repo-moves';
import { placementOf } from '../core/storage-nodes';
import { advertiseRefs, gitProtocolEnv, runService } from './smart-http';
import { configureHostedRepo } from './hosted-repo';

/** A copy's fetch may take long; its token outlives it. */
const FETCH_TOKEN_SECONDS = 3600;

export interface RepoMoveOptions {
  db: Db;
  /** The database of the owner's shard, where its repositories' placement is (ADR 0025); `db` without it. */
  dbOfOwner?: (owner: string) => Promise<Db>;
  log: Logger;
  reposDir: string;
  internalSecret: string;
  nodeId: string;
  /** The repository write lock of app.ts (local, then Redis or Postgres): the fence's barrier. */
  writeLock: (repo: string, log: Logger) => Promise<() => void>;
  /** Refs of a repository changed here (cached advertisements are stale). */
  onChanged: (repo: string) => Promise<void>;
}

/**
 * The storage node's half of moving a repository (workflows/move.ts, ADR 0014), internal only (the
 * gateway forwards no `/internal/…` path), every call authorised by a `repo-move` service token:
 *  - `/internal/move/{owner}/{repo}.git/…`: the source serves fetches of its copy (smart HTTP,
 *    upload-pack only), to the target;
 *  - `POST /internal/repos/move-in`: the target fetches the repository from the source into a copy
 *    of its own (a bare repository, every ref, pruned, HEAD as the source's) and answers its refs;
 *  - `POST /internal/repos/move-barrier`: the source takes and releases the repository's write lock,
 *    so every push that began before the fence has ended, and answers its refs (now unchanging);
 *  - `POST /internal/repos/move-drop`: removes a copy this node neither holds nor keeps as a replica
 *    (the source's after the switch and its grace period, the target's after a failed move).
 */
export function createRepoMoveRoutes(o: RepoMoveOptions): express.Router {
  const router = express.Router();

  async function authorize(req: Request): Promise<void> {
    const claims = await verifyServiceToken(o.internalSecret, req.header(SERVICE_HEADER)).catch((e: Error) => {
      throw new AuthenticationError(e.message);
    });
    if (claims.svc !== MOVE_SERVICE) throw new NotAllowedError('not a repository move token');
  }

  function names(source: Record<string, unknown> | undefined): { owner: string; name: string; repo: string; gitDir: string } {
    const owner = assertValidName('owner', source?.owner);
    const name = assertValidName('name', source?.name);
    return { owner, name, repo: `${owner}/${name}`, gitDir: repoPath(o.reposDir, owner, name) };
  }

  async function existing(gitDir: string, repo: string): Promise<void> {
    if (!(await isRepository(gitDir))) throw new NotFoundError(`repository ${repo} is not on storage node ${o.nodeId}`);
  }

  router.get('/internal/move/:owner/:repo.git/info/refs', route(async (req, res) => {
    await authorize(req);
    const { repo, gitDir } = names({ owner: req.params.owner, name: req.params.repo });
    if (req.query.service !== 'git-upload-pack') throw new InputError('only fetches are served here');
    await existing(gitDir, repo);
    const body = await advertiseRefs(gitDir, 'git-upload-pack', gitProtocolEnv(req));
    res.setHeader('Content-Type', 'application/x-git-upload-pack-advertisement');
    res.setHeader('Cache-Control', 'no-cache');
    res.end(body);
  }));

  router.post('/internal/move/:owner/:repo.git/git-upload-pack', route(async (req, res) => {
    await authorize(req);
    const { repo, gitDir } = names({ owner: req.params.owner, name: req.params.repo });
    await existing(gitDir, repo);
    await runService(req, res, 'git-upload-pack', gitDir, gitProtocolEnv(req));
  }));

  router.post('/internal/repos/move-in', express.json(), route(async (req, res) => {
    await authorize(req);
    const { owner, name, repo, gitDir } = names(req.body);
    const from = typeof req.body?.from === 'string' && /^https?:\/\//.test(req.body.from) ? (req.body.from as string).replace(/\/+$/, '') : undefined;
    if (!from) throw new InputError('from must be the source node URL');
    // Never over the copy this node serves: that one is the repository.
    const placed = await placementOf(o.dbOfOwner ? await o.dbOfOwner(owner) : o.db, owner, name);
    if (!placed) throw new NotFoundError(`repository ${repo} not found`);
    if (placed.nodeId === o.nodeId) throw new ConflictError(`repository ${repo} is already on storage node ${o.nodeId}`);
    if (!(await isRepository(gitDir))) {
      await fs.rm(gitDir, { recursive: true, force: true }); // what an interrupted init left
      await fs.mkdir(path.dirname(gitDir), { recursive: true });
      const init = await runGit(['init', '--bare', '--quiet', gitDir]);
      if (init.code !== 0) throw new Error(`git init failed: ${init.stderr}`);
      await configureHostedRepo(gitDir);
    }
    const token = await signServiceToken(o.internalSecret, MOVE_SERVICE, { repo }, FETCH_TOKEN_SECONDS);
    const url = `${from}/internal/move/${encodeURIComponent(owner)}/${encodeURIComponent(name)}.git`;
    const auth = ['-c', `http.extraHeader=${SERVICE_HEADER}: ${token}`];
    const env = { GIT_TERMINAL_PROMPT: '0' };
    // Every ref as the source has it: new ones added, moved ones forced, deleted ones pruned.
    const fetched = await runGit(['--git-dir', gitDir, ...auth, 'fetch', '--quiet', '--prune', '--no-write-fetch-head', url, '+refs/*:refs/*'], { env });
    if (fetched.code !== 0) throw new Error(`fetching ${repo} from ${from} failed: ${fetched.stderr.trim().slice(0, 500)}`);
    const head = await runGit(['--git-dir', gitDir, ...auth, 'ls-remote', '--symref', url, 'HEAD'], { env });
    const symref = /^ref: (refs\/\S+)\tHEAD$/m.exec(head.stdout.toString('utf8'))?.[1];
    if (symref) await runGit(['--git-dir', gitDir, 'symbolic-ref', 'HEAD', symref]);
    // Every object the refs reach is here (a cut-off fetch would leave a hole).
    const fsck = await runGit(['--git-dir', gitDir, 'fsck', '--connectivity-only', '--no-dangling']);
    if (fsck.code !== 0) throw new Error(`the copy of ${repo} is not complete: ${fsck.stderr.trim().slice(0, 500)}`);
    await o.onChanged(repo);
    res.json({ refs: await readRefs(gitDir), head: symref ?? null });
  }));

  router.post('/internal/repos/move-barrier', express.json(), route(async (req, res) => {
    await authorize(req);
    const { repo, gitDir } = names(req.body);
    await existing(gitDir, repo);
    const release = await o.writeLock(repo, req.log ?? o.log);
    release();
    res.json({ refs: await readRefs(gitDir) });
  }));

  router.post('/internal/repos/move-drop', express.json(), route(async (req, res) => {
    await authorize(req);
    const { owner, name, repo, gitDir } = names(req.body);
    const state = await moveStateByName(o.dbOfOwner ? await o.dbOfOwner(owner) : o.db, owner, name);
    // Only a copy that is neither the repository (placed elsewhere, not being moved here) nor one of its replicas.
    if (!state?.nodeId || state.nodeId === o.nodeId || state.movingTo === o.nodeId) {
      throw new ConflictError(`repository ${repo} is held by storage node ${o.nodeId} (or about to be); its copy stays`);
    }
    if (state.replicaNodes.includes(o.nodeId)) throw new ConflictError(`storage node ${o.nodeId} is a replica node of ${repo}; its copy stays`);
    await fs.rm(gitDir, { recursive: true, force: true });
    res.json({ dropped: true });
  }));

  return router;
}
