import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { dataPaths, type Config } from './config';

/**
 * The internal HMAC secret: from `DOTGIT_INTERNAL_SECRET`, else a file in the data dir made once
 * (mode 0600) by whichever process starts first; `wx` makes the creation race-free.
 */
export async function readInternalSecret(config: Config): Promise<string> {
  if (config.internalSecret) return config.internalSecret;
  const file = dataPaths(config).internalSecret;
  await fs.mkdir(path.dirname(file), { recursive: true });
  try {
    await fs.writeFile(file, randomBytes(48).toString('base64url'), { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return (await fs.readFile(file, 'utf8')).trim();
}
