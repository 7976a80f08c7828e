import type { Request } from 'express';
import type { Db } from '../../core/db';
import { AuthenticationError, NotAllowedError, NotFoundError } from '../../core/errors';
import { assertValidName } from '../../core/names';
import { atLeast } from '../../core/principal';
import { accessTo, findRepo, type RepoRow } from '../../core/repos';
import { ACTION_TOKEN_HEADER, verifyActionToken, type ActionClaims } from './action-token';
import type { LfsOperation } from './batch';

/**
 * The repository of an LFS request, if the caller may `need` it. The same rules, in the same
 * order, as the git endpoints (`authorize()` in git-server/app.ts), so LFS never grants what a
 * clone or push would not: anonymous callers are asked for credentials (git-lfs then retries with
 * them), callers who may not know the repository exists get 404, readers who try to write get 403.
 */
export async function repoFor(db: Db, req: Request, need: 'read' | 'write'): Promise<RepoRow> {
  const owner = assertValidName('owner', req.params.owner);
  const name = assertValidName('repo', req.params.repo);
  const repo = await findRepo(db, owner, name);
  const principal = req.principal;
  if (!repo) {
    if (!principal) throw new AuthenticationError('authentication required');
    throw new NotFoundError(`repository ${owner}/${name} not found`);
  }
  const access = await accessTo(db, principal, repo);
  if (!atLeast(access, need)) {
    if (!principal) throw new AuthenticationError('authentication required');
    if (access === 'none') throw new NotFoundError(`repository ${owner}/${name} not found`);
    throw new NotAllowedError(`your token may not ${need === 'write' ? 'upload LFS objects to' : 'read'} ${owner}/${name}`);
  }
  return repo;
}

export interface TransferGrant {
  repo: RepoRow;
  /** Size the batch answer promised for this object, when an action token authorised the request. */
  size?: number;
}

/**
 * Authorises an object transfer (GET, PUT, verify): by the action token the batch answer handed
 * out, else by the caller's own access (so `curl -u x:$TOKEN …/objects/<oid>` works too).
 */
export async function grantTransfer(db: Db, secret: string, req: Request, op: LfsOperation, oid: string): Promise<TransferGrant> {
  const token = req.header(ACTION_TOKEN_HEADER);
  if (token) {
    const owner = assertValidName('owner', req.params.owner);
    const name = assertValidName('repo', req.params.repo);
    const repo = await findRepo(db, owner, name);
    let claims: ActionClaims | undefined;
    let why = 'repository not found';
    if (repo) {
      claims = await verifyActionToken(secret, token, { op, tenantId: repo.tenantId, repoId: repo.id, oid }).catch((err: Error) => {
        why = err.message;
        return undefined;
      });
    }
    if (repo && claims) return { repo, size: claims.size };
    // A bad token with no credentials beside it is an authentication failure, not a hint to look further.
    if (!req.principal) throw new AuthenticationError(why);
  }
  return { repo: await repoFor(db, req, op === 'upload' ? 'write' : 'read') };
}
