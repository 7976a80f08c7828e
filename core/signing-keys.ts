import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import type { Db } from './db';
import { inTransaction } from './db';
import { currentSigningKey, listUsableSigningKeys, lockSigningKeyRotation, replaceCurrentSigningKey } from './stores/signing-keys-store';
import { SecretBox } from './secret-box';

/** Our issuer signs with ES256 only; verification of our tokens accepts nothing else. */
export const OWN_ALG = 'ES256';

export interface KeyRotation {
  /** A signing key older than this is replaced. Default 24 h. */
  rotateAfterMs: number;
  /** A replaced key stays published this long (longer than any token it signed lives). Default 1 h. */
  overlapMs: number;
}

interface LoadedKey {
  kid: string;
  publicJwk: JWK;
  publicKey: CryptoKey;
  createdAt: number;
  retiredAt: number | null;
  privateSealed: string;
}

/**
 * The issuer's key ring in Postgres (shared by every gateway instance, and by sandbox workers, which sign
 * pipeline id-tokens with it). Public keys are cached in
 * memory; an unknown `kid` reloads from the database at most once per `reloadEveryMs`, so a flood
 * of made-up kids costs one query per interval, not one per request.
 */
export class SigningKeys {
  private keys = new Map<string, LoadedKey>();
  private loadedAt = 0;
  private loading: Promise<void> | undefined;
  private readonly box: SecretBox;
  /** Database reloads done, for tests of the refetch bound. */
  reloads = 0;

  constructor(
    private readonly db: Db,
    masterSecret: string,
    private readonly rotation: KeyRotation = { rotateAfterMs: 24 * 3600_000, overlapMs: 3600_000 },
    private readonly reloadEveryMs = 30_000,
  ) {
    this.box = new SecretBox(masterSecret, 'jwt-signing-keys');
  }

  private async reload(): Promise<void> {
    this.loading ??= (async () => {
      this.reloads++;
      const rows = await listUsableSigningKeys(this.db, this.rotation.overlapMs / 1000);
      const next = new Map<string, LoadedKey>();
      for (const row of rows) {
        next.set(row.kid, {
          kid: row.kid,
          publicJwk: row.public_jwk,
          publicKey: (await importJWK(row.public_jwk, OWN_ALG)) as CryptoKey,
          createdAt: new Date(row.created_at).getTime(),
          retiredAt: row.retired_at ? new Date(row.retired_at).getTime() : null,
          privateSealed: row.private_enc,
        });
      }
      this.keys = next;
      this.loadedAt = Date.now();
    })().finally(() => (this.loading = undefined));
    return this.loading;
  }

  /** Makes a new signing key when there is none or the current one is due, retiring the old (lock: one gateway does it). */
  async rotateIfDue(now = Date.now()): Promise<void> {
    await inTransaction(this.db, async (c) => {
      await lockSigningKeyRotation(c);
      const current = await currentSigningKey(c);
      if (current && now - new Date(current.created_at).getTime() < this.rotation.rotateAfterMs) return;
      const { publicKey, privateKey } = await generateKeyPair(OWN_ALG, { extractable: true });
      const kid = randomBytes(12).toString('base64url');
      const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: OWN_ALG, use: 'sig' };
      const privateJwk = await exportJWK(privateKey);
      await replaceCurrentSigningKey(c, { kid, alg: OWN_ALG, publicJwk, privateEnc: this.box.seal(JSON.stringify(privateJwk)) });
    });
    await this.reload();
  }

  /** The key to sign with now. */
  async signingKey(): Promise<{ kid: string; key: CryptoKey }> {
    if (Date.now() - this.loadedAt > this.reloadEveryMs) await this.reload();
    let newest = [...this.keys.values()].filter((k) => k.retiredAt === null).sort((a, b) => b.createdAt - a.createdAt)[0];
    if (!newest) {
      await this.rotateIfDue();
      newest = [...this.keys.values()].filter((k) => k.retiredAt === null).sort((a, b) => b.createdAt - a.createdAt)[0];
    }
    const jwk = JSON.parse(this.box.open(newest.privateSealed)) as JWK;
    return { kid: newest.kid, key: (await importJWK(jwk, OWN_ALG)) as CryptoKey };
  }

  /** The public key of `kid`, or undefined (after at most one throttled reload). */
  async publicKey(kid: string): Promise<CryptoKey | undefined> {
    const known = this.keys.get(kid);
    if (known) return known.publicKey;
    if (Date.now() - this.loadedAt > this.reloadEveryMs) await this.reload();
    return this.keys.get(kid)?.publicKey;
  }

  /** `/.well-known/jwks.json`: every published public key. */
  async jwks(): Promise<{ keys: JWK[] }> {
    if (Date.now() - this.loadedAt > this.reloadEveryMs) await this.reload();
    return { keys: [...this.keys.values()].map((k) => k.publicJwk) };
  }
}
