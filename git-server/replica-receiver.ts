import express, { type Request } from 'express';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AuthenticationError, InputError, NotAllowedError } from '../core/errors';
import { repoPath, runGit } from '../core/git';
import { route } from '../core/http';
import { SERVICE_HEADER, verifyServiceToken } from '../core/internal-identity';
import type { Logger } from '../core/logger';
import { assertValidName } from '../core/names';
import { isRepository, REPLICA_HEAD_HEADER } from '../core/replica-sync';
import { advertiseRefs, gitProtocolEnv, runService, type GitService } from './smart-http';

// A replica is an exact mirror: deletions and force-pushes land as the primary made them, and no
// hook runs (the primary's push already recorded runs, webhooks and the refs fingerprint).
const RECEIVE_CONFIG = ['-c', `core.hooksPath=${os.devNull}`, '-c', 'receive.denyDeletes=false', '-c', 'receive.denyNonFastForwards=false'];

/**
 * The internal endpoint a url replica zone receives on (`/internal/replica/{owner}/{repo}.git`):
 * smart HTTP for `git push --mirror` and `git ls-remote` from the primary's worker, authenticated
 * by a replication token of this installation naming the repository. Never reachable through the
 * gateway (it forwards no `/internal/…` path).
 */
export function createReplicaReceiver(o: { reposDir: string; internalSecret: string; log: Logger; writeLock: (repo: string, log: Logger) => Promise<() => void>; onReceived: (repo: string) => Promise<void> }) {
  const router = express.Router();

  async function target(req: Request): Promise<{ name: string; gitDir: string }> {
    const owner = assertValidName('owner', req.params.owner);
    const repo = assertValidName('repo', req.params.repo);
    const claims = await verifyServiceToken(o.internalSecret, req.header(SERVICE_HEADER)).catch((e: Error) => {
      throw new AuthenticationError(e.message);
    });
    if (claims.svc !== 'replication' || claims.repo !== `${owner}/${repo}`) throw new NotAllowedError(`not a replication token for ${owner}/${repo}`);
    const gitDir = repoPath(o.reposDir, owner, repo);
    if (!(await isRepository(gitDir))) {
      await fs.mkdir(path.dirname(gitDir), { recursive: true });
      const r = await runGit(['init', '--bare', '--quiet', gitDir]);
      if (r.code !== 0) throw new Error(`git init ${gitDir}: ${r.stderr}`);
    }
    const head = req.header(REPLICA_HEAD_HEADER);
    if (head !== undefined) {
      if (!head.startsWith('refs/heads/') || (await runGit(['check-ref-format', head])).code !== 0) throw new InputError(`${REPLICA_HEAD_HEADER} must name a branch ref`);
      const r = await runGit(['--git-dir', gitDir, 'symbolic-ref', 'HEAD', head]);
      if (r.code !== 0) throw new Error(`git symbolic-ref in ${gitDir}: ${r.stderr}`);
    }
    return { name: `${owner}/${repo}`, gitDir };
  }

  const service = (value: unknown): GitService => (value === 'git-receive-pack' ? 'git-receive-pack' : 'git-upload-pack');

  router.get('/internal/replica/:owner/:repo.git/info/refs', route(async (req, res) => {
    const { gitDir } = await target(req);
    const s = service(req.query.service);
    const body = await advertiseRefs(gitDir, s, gitProtocolEnv(req), s === 'git-receive-pack' ? RECEIVE_CONFIG : []);
    res.setHeader('Content-Type', `application/x-${s}-advertisement`);
    res.setHeader('Cache-Control', 'no-cache');
    res.end(body);
  }));

  router.post('/internal/replica/:owner/:repo.git/git-upload-pack', route(async (req, res) => {
    const { gitDir } = await target(req);
    await runService(req, res, 'git-upload-pack', gitDir, gitProtocolEnv(req));
  }));

  router.post('/internal/replica/:owner/:repo.git/git-receive-pack', route(async (req, res) => {
    const { name, gitDir } = await target(req);
    const release = await o.writeLock(name, o.log);
    try {
      await runService(req, res, 'git-receive-pack', gitDir, gitProtocolEnv(req), RECEIVE_CONFIG);
    } finally {
      release();
      await o.onReceived(name);
    }
  }));
  return router;
}
