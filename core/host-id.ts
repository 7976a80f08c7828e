import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const HOST_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** A host id made from the machine's name (cut to what a host id may hold) and a short random part. */
export function newHostId(hostname = os.hostname()): string {
  const base = hostname.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 48) || 'host';
  return `${base}-${randomBytes(3).toString('hex')}`;
}

/**
 * The worker's stable host id: `configured` (DOTGIT_HOST_ID) when given, else the one saved in
 * `file` (the data dir's `host-id`), made and saved the first time, so a restart keeps its id and
 * its task queue. The random part keeps two workers on one machine (own data dirs) apart.
 */
export async function resolveHostId(configured: string | undefined, file: string): Promise<string> {
  if (configured) return configured;
  const saved = (await fs.readFile(file, 'utf8').catch(() => '')).trim();
  if (HOST_ID.test(saved)) return saved;
  const id = newHostId();
  await fs.mkdir(path.dirname(file), { recursive: true });
  // Exclusive create: of two processes starting at once on one data dir, both end with the winner's id.
  await fs.writeFile(file, id + '\n', { flag: 'wx' }).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  const now = (await fs.readFile(file, 'utf8')).trim();
  if (!HOST_ID.test(now)) throw new Error(`${file} holds no valid host id; remove it or set DOTGIT_HOST_ID`);
  return now;
}
