import path from 'node:path';
import { z } from 'zod';
import { assertValidName } from './names';

/**
 * Replica zones (`DOTGIT_REPLICA_ZONES`): where every repository is copied after each push. A zone
 * is either a storage root on this machine (`{name, root}`: `<root>/<owner>/<repo>.git`, e.g. a
 * volume in another failure domain) or a git-server of this same installation running in another
 * zone (`{name, url}`: its internal base URL; it shares the internal secret and receives through
 * `/internal/replica/…`, without hooks).
 */
export type ReplicaZone = { name: string; root: string } | { name: string; url: string };

const zoneName = z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'a zone name is 1-32 of a-z 0-9 - (not starting with -)');
const zoneSchema = z.union([
  z.strictObject({ name: zoneName, root: z.string().refine((p) => path.isAbsolute(p), 'a zone root must be an absolute path') }),
  z.strictObject({ name: zoneName, url: z.url({ protocol: /^https?$/, error: 'a zone url must be an http(s) URL' }) }),
]);

export const replicaZonesSchema = z
  .array(zoneSchema)
  .max(16)
  .refine((zones) => new Set(zones.map((zone) => zone.name)).size === zones.length, 'zone names must be unique');

/**
 * The raw value of `DOTGIT_REPLICA_ZONES`: a JSON list (`[{"name":"b","root":"/mnt/b"}]`), or a
 * comma list of `name=/absolute/root` and `name=http://host:port` items. Empty: no replication.
 */
export function parseReplicaZonesEnv(value: string | undefined, parseJson: (text: string) => unknown): unknown {
  const text = (value ?? '').trim();
  if (!text) return [];
  if (text.startsWith('[')) return parseJson(text);
  return text.split(',').map((item) => {
    const at = item.indexOf('=');
    const name = item.slice(0, at).trim();
    const where = item.slice(at + 1).trim();
    return /^https?:\/\//.test(where) ? { name, url: where } : { name, root: where };
  });
}

export const isRootZone = (zone: ReplicaZone): zone is { name: string; root: string } => 'root' in zone;

/** The bare repository of `owner/repo` inside a root zone (names validated before the path is built). */
export function replicaPath(zone: { root: string }, owner: string, repo: string): string {
  return path.join(zone.root, assertValidName('owner', owner), `${assertValidName('repo', repo)}.git`);
}
