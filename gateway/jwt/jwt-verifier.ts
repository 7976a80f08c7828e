import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import { AuthenticationError } from '../../core/errors';
import { SCOPES, type Scope } from '../../core/tokens';
import { OWN_ALG, type SigningKeys } from './signing-keys';

/** An outside identity provider whose JWTs we accept (configured, e.g. a company SSO). */
export interface ExternalIssuer {
  issuer: string;
  jwksUrl: string;
  audience: string;
  /** Pinned; e.g. ["RS256"]. */
  algorithms: string[];
  /** Claim holding the dotgit user name. Default `preferred_username`. */
  usernameClaim?: string;
}

export interface VerifiedJwt {
  username: string;
  scopes: Scope[];
  issuer: string;
  /** The API token our own JWTs were exchanged for (checked for revocation on every request). */
  tokenId?: number;
  /** `exp` in ms since the epoch: tokens minted with this JWT end no later. */
  expiresAt?: number;
}

const expOf = (payload: JWTPayload) => (typeof payload.exp === 'number' ? payload.exp * 1000 : undefined);

/** Access tokens of our issuer are typed per RFC 9068. */
export const ACCESS_TOKEN_TYP = 'at+jwt';
const CLOCK_TOLERANCE_SECONDS = 5;
const KID = /^[A-Za-z0-9_-]{1,64}$/;

function scopesOf(payload: JWTPayload): Scope[] {
  const raw = typeof payload.scope === 'string' ? payload.scope.split(' ') : [];
  return raw.filter((s): s is Scope => (SCOPES as readonly string[]).includes(s));
}

/**
 * Verifies bearer JWTs: our own (ES256, `typ: at+jwt`, our issuer and audience, a known `kid`) and
 * those of configured external issuers (their JWKS fetched with jose's remote key set, whose
 * cooldown bounds refetches when unknown kids arrive). Algorithms are pinned per issuer, so
 * `alg: none` and HS256-signed-with-a-public-key tokens never verify. Every failure is the same 401.
 */
export class JwtVerifier {
  private readonly remote = new Map<string, { cfg: ExternalIssuer; keys: ReturnType<typeof createRemoteJWKSet> }>();

  constructor(
    private readonly o: { keys: SigningKeys; issuer: string; audience: string; external: ExternalIssuer[] },
  ) {
    for (const cfg of o.external) {
      this.remote.set(cfg.issuer, { cfg, keys: createRemoteJWKSet(new URL(cfg.jwksUrl), { cooldownDuration: 30_000, timeoutDuration: 5000 }) });
    }
  }

  async verify(token: string): Promise<VerifiedJwt> {
    let header: ReturnType<typeof decodeProtectedHeader>;
    let unverified: JWTPayload;
    try {
      header = decodeProtectedHeader(token);
      unverified = decodeJwt(token);
    } catch {
      throw new AuthenticationError('malformed JWT');
    }
    try {
      if (unverified.iss === this.o.issuer) {
        if (header.alg !== OWN_ALG || typeof header.kid !== 'string' || !KID.test(header.kid)) throw new Error('bad header');
        const key = await this.o.keys.publicKey(header.kid);
        if (!key) throw new Error('unknown kid');
        const { payload } = await jwtVerify(token, key, {
          issuer: this.o.issuer,
          audience: this.o.audience,
          algorithms: [OWN_ALG],
          typ: ACCESS_TOKEN_TYP,
          clockTolerance: CLOCK_TOLERANCE_SECONDS,
          requiredClaims: ['exp', 'iat', 'sub'],
        });
        return { username: String(payload.sub), scopes: scopesOf(payload), issuer: this.o.issuer, tokenId: Number(payload.tok) || undefined, expiresAt: expOf(payload) };
      }
      const ext = typeof unverified.iss === 'string' ? this.remote.get(unverified.iss) : undefined;
      if (!ext) throw new Error('unknown issuer');
      const { payload } = await jwtVerify(token, ext.keys, {
        issuer: ext.cfg.issuer,
        audience: ext.cfg.audience,
        algorithms: ext.cfg.algorithms,
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        requiredClaims: ['exp'],
      });
      const username = payload[ext.cfg.usernameClaim ?? 'preferred_username'];
      if (typeof username !== 'string') throw new Error('no user name claim');
      return { username, scopes: scopesOf(payload), issuer: ext.cfg.issuer, expiresAt: expOf(payload) };
    } catch {
      // One answer for every reason: the caller learns nothing about keys or claims.
      throw new AuthenticationError('invalid or expired JWT');
    }
  }
}
