import type { Principal } from '../core/principal';

interface Entry {
  principal: Principal;
  /** When the token itself expires (ms since the epoch), or null. */
  tokenExpiresAt: number | null;
  /** When this entry must be looked up again. */
  staleAt: number;
}

/**
 * API-token lookups kept in the gateway's memory, keyed by the token's SHA-256, so a request with a
 * known token costs no Postgres round trip. Only safe together with the revocation check the rate
 * limiter makes on every request (docs/decisions/0006-gateway-token-cache.md): the TTL bounds how
 * long other changes (a restored database, a row edited by hand) take to be seen; expiry is checked
 * here on every hit. Bounded in size; the least recently used entry goes first.
 */
export class TokenCache {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
  ) {}

  get(hash: string, now = Date.now()): Principal | undefined {
    const e = this.entries.get(hash);
    if (!e) return undefined;
    if (e.staleAt <= now || (e.tokenExpiresAt !== null && e.tokenExpiresAt <= now)) {
      this.entries.delete(hash);
      return undefined;
    }
    // Re-inserted so the Map's order is least recently used first.
    this.entries.delete(hash);
    this.entries.set(hash, e);
    return e.principal;
  }

  set(hash: string, principal: Principal, tokenExpiresAt: Date | null, now = Date.now()): void {
    if (this.ttlMs <= 0) return;
    this.entries.delete(hash);
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(hash, { principal, tokenExpiresAt: tokenExpiresAt ? tokenExpiresAt.getTime() : null, staleAt: now + this.ttlMs });
  }

  delete(hash: string): void {
    this.entries.delete(hash);
  }

  get size(): number {
    return this.entries.size;
  }
}
