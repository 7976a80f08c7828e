import client from 'prom-client';

const lookups = new client.Counter({ name: 'dotgit_ref_advertisement_cache_total', help: 'ref advertisement cache lookups', labelNames: ['result'] });

/**
 * Ref advertisements (`info/refs`) in memory, keyed by repository generation (see
 * repo-generation.ts), service and Git-Protocol. Entries live briefly (they are cheap to make and
 * the TTL bounds staleness if an invalidation is ever lost) and only small ones are kept.
 */
export class AdvertisementCache {
  private readonly entries = new Map<string, { body: Buffer; expires: number }>();
  hits = 0;
  misses = 0;

  constructor(
    private readonly o: { ttlMs: number; maxEntries: number; maxEntryBytes: number } = { ttlMs: 30_000, maxEntries: 2000, maxEntryBytes: 1024 * 1024 },
  ) {}

  get(key: string): Buffer | undefined {
    const e = this.entries.get(key);
    if (!e || e.expires < Date.now()) {
      if (e) this.entries.delete(key);
      this.misses++;
      lookups.inc({ result: 'miss' });
      return undefined;
    }
    this.hits++;
    lookups.inc({ result: 'hit' });
    return e.body;
  }

  set(key: string, body: Buffer): void {
    if (body.length > this.o.maxEntryBytes) return;
    this.entries.delete(key);
    this.entries.set(key, { body, expires: Date.now() + this.o.ttlMs });
    while (this.entries.size > this.o.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
  }
}
