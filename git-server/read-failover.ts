import client from 'prom-client';
import type { Db } from '../core/db';
import { UnavailableError } from '../core/errors';
import type { Logger } from '../core/logger';
import { fingerprintOf, isRepository, readRefs } from '../core/replica-sync';
import { isRootZone, replicaPath, type ReplicaZone } from '../core/replica-zones';
import { pushedRefsFingerprint } from '../core/stores/repos-store';

const failovers = new client.Counter({ name: 'dotgit_replication_read_failovers_total', help: 'Fetches served from a replica zone because the primary copy was unavailable', labelNames: ['zone'] });

/**
 * The directory a fetch reads from: the primary copy when it is there, else the first root zone
 * whose refs equal the ones the last push left (`repos.refs_fingerprint`), so a failed-over read
 * never serves an older state. No such replica: 503, never a stale answer.
 */
export async function readableCopy(o: { db: Db; zones: ReplicaZone[]; log: Logger }, repo: { id: number; owner: string; name: string }, primaryDir: string): Promise<string> {
  if (await isRepository(primaryDir)) return primaryDir;
  const zones = o.zones.filter(isRootZone);
  const expected = zones.length ? await pushedRefsFingerprint(o.db, repo.id) : undefined;
  if (expected) {
    for (const zone of zones) {
      const dir = replicaPath(zone, repo.owner, repo.name);
      if (!(await isRepository(dir))) continue;
      const refs = await readRefs(dir).catch(() => undefined);
      if (refs && fingerprintOf(refs) === expected) {
        failovers.inc({ zone: zone.name });
        o.log.warn({ repo: `${repo.owner}/${repo.name}`, zone: zone.name }, 'primary copy unavailable; serving the read from an up-to-date replica');
        return dir;
      }
    }
  }
  o.log.error({ repo: `${repo.owner}/${repo.name}` }, 'primary copy unavailable and no replica is up to date');
  throw new UnavailableError(`repository ${repo.owner}/${repo.name} is unavailable: its primary copy is missing and no replica zone is up to date`, 30);
}
