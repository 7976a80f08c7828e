/**
 * Storage hygiene after an image build (ADR 0042). `buildah bud --layers` keeps every step's result
 * as an untagged image, its layer cache; a rebuild after a change leaves the replaced steps' images
 * behind, so buildah's storage grew by hundreds of MB a build (4.6 GB after a dozen). After each
 * build this removes the untagged images the build did not use or make, and the base images of
 * other recipes, keeping exactly what the next build of the same tree finds in its cache.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { ProvisionLog } from '../provision/log';

const execFileAsync = promisify(execFile);
/** The names infra/image/base.ts gives the base images it makes. */
const LOCAL_BASE_PREFIX = 'localhost/dotgit-base-';

/** The step results a build's output names: `--> <id>` for a step made, `--> Using cache <id>` for one found. */
export function stepImageIds(output: string): string[] {
  return [...output.matchAll(/^--> (?:Using cache )?([0-9a-f]{11,64})\s*$/gm)].map((m) => m[1]!);
}

export interface PruneOptions {
  buildah: string;
  /** Image ids (full or the 11+ digit prefixes buildah prints) the build used or made. */
  keep: readonly string[];
  /** Base images the build used; the other images made by infra/image/base.ts are removed. */
  bases: readonly string[];
  log: ProvisionLog;
}

export interface PruneResult {
  removed: number;
  /** Untagged images left: the build's own step results. */
  kept: string[];
}

export async function pruneAfterBuild({ buildah, keep, bases, log }: PruneOptions): Promise<PruneResult> {
  const kept = (id: string) => keep.some((k) => id.startsWith(k) || k.startsWith(id));
  const images = await listImages(buildah);
  const staleBases = images.filter((i) => i.names.some((n) => n.startsWith(LOCAL_BASE_PREFIX)) && !i.names.some((n) => bases.includes(n)));
  const stale = images.filter((i) => i.names.length === 0 && !kept(i.id));
  // Newest first, many per call (one `buildah rmi` costs about a second). Removing an image also
  // removes its parents that nothing else keeps, so a later id of the batch may be gone already and
  // fail the call: then only the ids still there are tried again, one by one. Never --force: that
  // would remove the containers still running an image (an earlier build's, which the next build
  // then removes).
  const rmi = (ids: string[]) => execFileAsync(buildah, ['rmi', ...ids]).then(() => true, () => false);
  const doomed = [...stale, ...staleBases].map((i) => i.id);
  for (let i = 0; i < doomed.length; i += 50) {
    const batch = doomed.slice(i, i + 50);
    if (await rmi(batch)) continue;
    const present = new Set((await listImages(buildah)).map((img) => img.id));
    for (const id of batch) if (present.has(id)) await rmi([id]);
  }
  const after = await listImages(buildah);
  const still = new Set(after.map((img) => img.id));
  const removed = doomed.filter((id) => !still.has(id)).length;
  if (removed > 0) log.info(`image: removed ${removed} image(s) no build of this tree uses`);
  const left = after.filter((i) => i.names.length === 0).map((i) => i.id);
  return { removed, kept: left };
}

interface StoredImage {
  id: string;
  names: string[];
}

/** Every image in buildah's storage, intermediate ones included, newest first. */
export async function listImages(buildah: string): Promise<StoredImage[]> {
  const { stdout } = await execFileAsync(buildah, ['images', '--all', '--no-trunc', '--json'], { maxBuffer: 64 * 1024 * 1024 });
  const parsed = JSON.parse(stdout.trim() || '[]') as { id: string; names: string[] | null; created: number }[];
  return parsed.sort((a, b) => b.created - a.created).map((i) => ({ id: i.id.replace(/^sha256:/, ''), names: i.names ?? [] }));
}
