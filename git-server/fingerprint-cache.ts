import { refsFingerprint } from './smart-http';

/**
 * Refs fingerprints (the pack cache's key part that changes with the refs) in memory, keyed like
 * the ref advertisements: repository generation (repo-generation.ts) and folder. A clone storm
 * asks for the same one 40 times (ls-refs and fetch of every clone), each a `git for-each-ref`
 * process otherwise; a short TTL bounds staleness if an invalidation were ever lost, and without
 * a generation (Redis not answering) nothing is cached.
 */
export class FingerprintCache {
  private readonly entries = new Map<string, { value: Promise<string>; expires: number }>();

  constructor(private readonly o: { ttlMs: number; maxEntries: number } = { ttlMs: 30_000, maxEntries: 2000 }) {}

  get(gitDir: string, generation: string | undefined): Promise<string> {
    if (generation === undefined) return refsFingerprint(gitDir);
    const key = `${generation}\0${gitDir}`;
    const e = this.entries.get(key);
    if (e && e.expires >= Date.now()) return e.value;
    // The promise is kept, so concurrent identical requests share one git process; a failure is not kept.
    const value = refsFingerprint(gitDir);
    this.entries.delete(key);
    this.entries.set(key, { value, expires: Date.now() + this.o.ttlMs });
    value.catch(() => this.entries.delete(key));
    while (this.entries.size > this.o.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    return value;
  }
}
