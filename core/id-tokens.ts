import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import { OWN_ALG, type SigningKeys } from './signing-keys';

/**
 * Pipeline id-tokens (issue 17 item 7; ADR 0031): a job with `id-token:` gets a short-lived JWT in
 * DOTGIT_ID_TOKEN, signed with the platform's rotating keys (the ones `/.well-known/jwks.json`
 * publishes), so a cloud's workload-identity federation can trust it without a stored secret.
 * Claims follow GitHub Actions' where they mean the same (`repository`, `ref`, `sha`, `actor`,
 * `run_id`, `job`, `event_name`, `environment`).
 */

/** An id-token lives this long from the step's start: long enough to exchange it, short enough to be worthless once leaked. */
export const ID_TOKEN_TTL_SECONDS = 900;
/** `typ` of id-tokens: anything but the access tokens' `at+jwt`, so the gateway never takes one as an API credential. */
export const ID_TOKEN_TYP = 'JWT';

export interface IdTokenRequest {
  tenant: string;
  repo: string;
  ref: string;
  commit: string;
  runId: string;
  job: string;
  /** Who pushed or started the run, or requested the deploy. */
  actor?: string;
  event?: string;
  /** A deploy's environment: `sub` then names it instead of the ref. */
  environment?: string;
  /** `aud`; absent: the repository owner's URL on this platform (as GitHub's default is the owner's). */
  audience?: string[];
}

/** A job asked for an audience the platform refuses (its own API's): the step fails with this message. */
export class IdTokenRefusedError extends Error {
  override readonly name = 'IdTokenRefusedError';
}

export class IdTokenIssuer {
  constructor(
    private readonly keys: Pick<SigningKeys, 'signingKey'>,
    /** `iss`: the platform's public URL, where `/.well-known/openid-configuration` is served. */
    readonly issuer: string,
    /** The audience of the platform's own access tokens: never given to an id-token. */
    private readonly apiAudience: string,
  ) {}

  /** `sub`: `repo:<owner>/<repo>:ref:<ref>`, or `repo:<owner>/<repo>:environment:<env>` for deploy jobs. */
  static subject(r: Pick<IdTokenRequest, 'tenant' | 'repo' | 'ref' | 'environment'>): string {
    return `repo:${r.tenant}/${r.repo}:${r.environment !== undefined ? `environment:${r.environment}` : `ref:${r.ref}`}`;
  }

  async mint(r: IdTokenRequest): Promise<string> {
    const audience = r.audience ?? [`${this.issuer}/${r.tenant}`];
    const refused = audience.find((a) => a === this.apiAudience);
    if (refused !== undefined) throw new IdTokenRefusedError(`id-token audience "${refused}" is refused: it is the platform's own API audience (DOTGIT_JWT_AUDIENCE)`);
    const { kid, key } = await this.keys.signingKey();
    return new SignJWT({
      repository: `${r.tenant}/${r.repo}`,
      repository_owner: r.tenant,
      ref: r.ref,
      sha: r.commit,
      run_id: r.runId,
      job: r.job,
      ...(r.actor !== undefined ? { actor: r.actor } : {}),
      ...(r.event !== undefined ? { event_name: r.event } : {}),
      ...(r.environment !== undefined ? { environment: r.environment } : {}),
    })
      .setProtectedHeader({ alg: OWN_ALG, kid, typ: ID_TOKEN_TYP })
      .setIssuer(this.issuer)
      .setSubject(IdTokenIssuer.subject(r))
      .setAudience(audience.length === 1 ? audience[0] : audience)
      .setIssuedAt()
      .setNotBefore('0s')
      .setExpirationTime(`${ID_TOKEN_TTL_SECONDS}s`)
      .setJti(randomBytes(12).toString('base64url'))
      .sign(key);
  }

  /** `/.well-known/openid-configuration`: what a relying party needs to verify our id-tokens. */
  static discovery(issuer: string): Record<string, unknown> {
    return {
      issuer,
      jwks_uri: `${issuer}/.well-known/jwks.json`,
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: [OWN_ALG],
      scopes_supported: ['openid'],
      claims_supported: ['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti', 'repository', 'repository_owner', 'ref', 'sha', 'run_id', 'job', 'actor', 'event_name', 'environment'],
    };
  }
}

/** The issuer URL from the platform's public URL, without a trailing slash (as `iss` must match exactly). */
export function oidcIssuer(publicUrl: string): string {
  return publicUrl.replace(/\/+$/, '');
}
