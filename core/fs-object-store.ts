import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import { NotFoundError } from './errors';
import { assertObjectKey, type ObjectStore } from './object-store';

export { InvalidKeyError } from './object-store';

/** Filesystem driver: one file per key under `root`; writes go to a temp file and are renamed, so no reader sees half an object. */
export class FsObjectStore implements ObjectStore {
  constructor(private readonly root: string) {}

  private file(key: string): string {
    assertObjectKey(key);
    return path.join(this.root, key);
  }

  async put(key: string, body: Buffer | Readable): Promise<{ size: number }> {
    const target = this.file(key);
    await fs.mkdir(path.dirname(target), { recursive: true });
    const tmp = `${target}.tmp-${randomBytes(6).toString('hex')}`;
    try {
      await pipeline(Buffer.isBuffer(body) ? Readable.from([body]) : body, createWriteStream(tmp));
      await fs.rename(tmp, target);
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
    return { size: (await fs.stat(target)).size };
  }

  async get(key: string): Promise<Readable> {
    const file = this.file(key);
    if (!(await this.exists(key))) throw new NotFoundError(`object ${key} not found`);
    return createReadStream(file);
  }

  async getBuffer(key: string): Promise<Buffer> {
    try {
      return await fs.readFile(this.file(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`object ${key} not found`);
      throw err;
    }
  }

  async exists(key: string): Promise<boolean> {
    return fs.stat(this.file(key)).then((s) => s.isFile(), () => false);
  }

  async list(prefix: string): Promise<string[]> {
    const out: string[] = [];
    const walk = async (dir: string, rel: string): Promise<void> => {
      const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const e of entries) {
        const r = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) await walk(path.join(dir, e.name), r);
        else if (!e.name.includes('.tmp-')) out.push(r);
      }
    };
    const base = prefix.replace(/\/+$/, '');
    await walk(base ? this.file(base) : this.root, base);
    return out.sort();
  }

  async delete(key: string): Promise<void> {
    await fs.rm(this.file(key), { force: true });
  }
}
