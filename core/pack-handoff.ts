import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';

/**
 * Handing a pack-cache hit to the gateway (ADR 0040): instead of relaying a cached fetch answer
 * through its own process, the git-server answers with the file's name inside the pack cache and
 * the gateway streams the file itself. Only between processes that read the same folder: the
 * gateway names the folder's volume id (a random marker the git-server writes into it) in its
 * request, and the git-server hands off only when that is its own folder's id.
 */

/** Request header (gateway → git-server): the volume id of the pack-cache folder the gateway can read. */
export const PACK_VOLUME_HEADER = 'x-dotgit-pack-volume';
/** Answer header (git-server → gateway): the cached answer's path inside that folder; the body is empty. */
export const PACK_FILE_HEADER = 'x-dotgit-pack-file';

/** The only paths a handoff may name: `<2 hex>/<64 hex>.pack-response` (no other file, no `..`). */
export const PACK_FILE_PATH = /^[0-9a-f]{2}\/[0-9a-f]{64}\.pack-response$/;

const MARKER = '.volume-id';
const ID = /^[0-9a-f]{32}$/;

/** The folder's volume id, or undefined while it has none (the git-server has not started on it). */
export async function readVolumeId(dir: string): Promise<string | undefined> {
  const text = await fs.readFile(path.join(dir, MARKER), 'utf8').catch(() => undefined);
  const id = text?.trim();
  return id && ID.test(id) ? id : undefined;
}

/** The folder's volume id, made on first use (a racing second writer's id wins for both). */
export async function ensureVolumeId(dir: string): Promise<string> {
  const found = await readVolumeId(dir);
  if (found) return found;
  await fs.mkdir(dir, { recursive: true });
  const id = randomBytes(16).toString('hex');
  try {
    await fs.writeFile(path.join(dir, MARKER), `${id}\n`, { flag: 'wx' });
    return id;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const other = await readVolumeId(dir);
    if (!other) throw new Error(`unreadable ${MARKER} in ${dir}`);
    return other;
  }
}
