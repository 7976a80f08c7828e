import { createSecretKey, hkdfSync, type KeyObject } from 'node:crypto';
import { SignJWT, jwtVerify } from 'jose';
import { AuthenticationError, NotAllowedError } from './errors';

/**
 * Job credentials (ADR 0014, "Workspace sources over the network"): a sandbox host has no
 * repository disk, so a job fetches its commit from a git-server with a short-lived HS256 JWT that
 * names one repository and one commit, and is good for nothing else. Its key is derived from the
 * internal secret (HKDF, own label), so it never verifies as an identity or service token.
 */
export const JOB_CREDENTIAL_AUDIENCE = 'dotgit-source';
const ISSUER = 'dotgit-worker';
const TYP = 'dotgit-job+jwt';
/** Covers a slow first fetch of a large commit; a leaked credential still expires soon. */
export const JOB_CREDENTIAL_TTL_SECONDS = 15 * 60;

export interface JobSource {
  /** `tenant/name` */
  repo: string;
  commit: string;
}

const keys = new Map<string, KeyObject>();
function key(secret: string): KeyObject {
  let k = keys.get(secret);
  if (!k) {
    k = createSecretKey(Buffer.from(hkdfSync('sha256', secret, '', 'dotgit-job-credential', 32)));
    keys.set(secret, k);
  }
  return k;
}

export async function mintJobCredential(secret: string, source: JobSource, ttlSeconds = JOB_CREDENTIAL_TTL_SECONDS): Promise<string> {
  return new SignJWT({ repo: source.repo, commit: source.commit })
    .setProtectedHeader({ alg: 'HS256', typ: TYP })
    .setIssuer(ISSUER)
    .setAudience(JOB_CREDENTIAL_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(key(secret));
}

/**
 * Verifies `token` and, given `expected`, that it is for that repository and commit: a missing,
 * forged or expired credential is an AuthenticationError (401); a good one for another repository
 * or commit a NotAllowedError (403) that says which.
 */
export async function verifyJobCredential(secret: string, token: string | undefined, expected?: JobSource): Promise<JobSource> {
  if (!token) throw new AuthenticationError('a job credential is required (Authorization: Bearer <job credential>)');
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(token, key(secret), { audience: JOB_CREDENTIAL_AUDIENCE, issuer: ISSUER, algorithms: ['HS256'], typ: TYP, clockTolerance: 5 }));
  } catch (err) {
    throw new AuthenticationError(`invalid job credential: ${(err as Error).message}`);
  }
  const { repo, commit } = payload;
  if (typeof repo !== 'string' || typeof commit !== 'string') throw new AuthenticationError('invalid job credential: no repository or commit');
  if (expected) assertCredentialCovers({ repo, commit }, expected);
  return { repo, commit };
}

/** Refuses (403) a verified credential that names another repository or commit than the request. */
export function assertCredentialCovers(granted: JobSource, wanted: JobSource): void {
  if (granted.repo !== wanted.repo) throw new NotAllowedError(`job credential is for ${granted.repo}, not ${wanted.repo}`);
  if (granted.commit !== wanted.commit) throw new NotAllowedError(`job credential for ${granted.repo} is for commit ${granted.commit}, not ${wanted.commit}`);
}
