import { spawn } from 'node:child_process';
import express from 'express';
import { InputError, NotFoundError } from '../core/errors';
import { repoPath, runGit } from '../core/git';
import { route } from '../core/http';
import { assertCredentialCovers, verifyJobCredential } from '../core/job-credential';
import { assertValidName } from '../core/names';

const COMMIT_ID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

function bearer(header: string | undefined): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')?.[1];
}

/**
 * `GET /internal/repos/archive?owner=&name=&commit=` (ADR 0014, "Workspace sources over the
 * network"): the files of one commit as a tar (`git archive`, as the local checkout made them), for
 * sandbox hosts that have no repository disk. Authorised only by a job credential
 * (core/job-credential.ts) naming this repository and this commit. Never reachable through the
 * gateway (it forwards no `/internal/…` path).
 */
export function createSourceArchive(o: { reposDir: string; internalSecret: string }) {
  const router = express.Router();
  router.get('/internal/repos/archive', route(async (req, res) => {
    // Who asks first (401 for no or a bad credential), then what (400), then whether it may (403).
    const granted = await verifyJobCredential(o.internalSecret, bearer(req.header('authorization')));
    const owner = assertValidName('owner', req.query.owner);
    const name = assertValidName('name', req.query.name);
    const commit = typeof req.query.commit === 'string' && COMMIT_ID.test(req.query.commit) ? req.query.commit : undefined;
    if (!commit) throw new InputError('commit must be a full commit id (40 or 64 hex digits)');
    assertCredentialCovers(granted, { repo: `${owner}/${name}`, commit });
    const gitDir = repoPath(o.reposDir, owner, name);
    const found = await runGit(['--git-dir', gitDir, 'cat-file', '-e', `${commit}^{commit}`]);
    if (found.code !== 0) throw new NotFoundError(`commit ${commit} not found in ${owner}/${name}`);
    const archive = spawn('git', ['--git-dir', gitDir, 'archive', '--format=tar', commit], { stdio: ['ignore', 'pipe', 'pipe'] });
    let errors = '';
    archive.stderr.on('data', (d) => (errors += d));
    // A client that goes away stops the archive; one that fails midway gets a cut stream, never a short tar that looks whole.
    res.on('close', () => archive.kill());
    archive.on('close', (code) => {
      if (code === 0) return void res.end();
      req.log?.warn({ commit, repo: `${owner}/${name}`, code, errors: errors.trim() }, 'git archive failed mid-stream');
      res.destroy();
    });
    res.setHeader('Content-Type', 'application/x-tar');
    res.setHeader('Cache-Control', 'no-store');
    // Ended only once git says the archive is whole (above).
    archive.stdout.pipe(res, { end: false });
  }));
  return router;
}
