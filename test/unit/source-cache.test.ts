import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { archivesToEvict, SourceCache } from '../../activities/sandbox/source-cache';

describe('archivesToEvict', () => {
  const a = (file: string, bytes: number, usedAt: number) => ({ file, bytes, usedAt });

  test('nothing goes while the cache fits', () => {
    expect(archivesToEvict([a('x', 40, 1), a('y', 60, 2)], 100)).toEqual([]);
  });

  test('least recently used go first, until the rest fit', () => {
    expect(archivesToEvict([a('new', 50, 30), a('old', 50, 10), a('mid', 50, 20)], 100)).toEqual(['old']);
    expect(archivesToEvict([a('new', 50, 30), a('old', 50, 10), a('mid', 50, 20)], 60)).toEqual(['old', 'mid']);
  });

  test('an archive in use stays, the next oldest goes instead', () => {
    expect(archivesToEvict([a('new', 50, 30), a('old', 50, 10), a('mid', 50, 20)], 100, new Set(['old']))).toEqual(['mid']);
  });

  test('one archive larger than the bound goes when it is not in use', () => {
    expect(archivesToEvict([a('big', 500, 10)], 100)).toEqual(['big']);
    expect(archivesToEvict([a('big', 500, 10)], 100, new Set(['big']))).toEqual([]);
  });
});

describe('SourceCache', () => {
  const commit = (c: string) => c.repeat(40);
  let dir: string;
  let fetched: string[];
  const fetcher = async (source: { repo: string; commit: string }, dest: string) => {
    fetched.push(`${source.repo}@${source.commit.slice(0, 1)}`);
    await new Promise((r) => setTimeout(r, 20));
    await fs.writeFile(dest, Buffer.alloc(600, 1));
  };

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'source-cache-'));
    fetched = [];
  });

  test('jobs of one commit fetch it once, at the same time or later', async () => {
    const cache = new SourceCache({ dir, maxBytes: 10_000, fetch: fetcher });
    const source = { repo: 'acme/app', commit: commit('a') };
    const seen = await Promise.all([1, 2, 3].map(() => cache.use(source, async (file) => fs.readFile(file).then((b) => b.length))));
    expect(seen).toEqual([600, 600, 600]);
    await cache.use(source, async () => undefined);
    expect(fetched).toEqual(['acme/app@a']);
    expect(cache.fileOf(source).startsWith(dir + path.sep)).toBe(true);
  });

  test('beyond its size the least recently used archive goes, and is fetched again when needed', async () => {
    const cache = new SourceCache({ dir, maxBytes: 1300, fetch: fetcher });
    const one = { repo: 'acme/app', commit: commit('1') };
    const two = { repo: 'acme/app', commit: commit('2') };
    const three = { repo: 'acme/other', commit: commit('3') };
    await cache.use(one, async () => undefined);
    await cache.use(two, async () => undefined);
    // `one` used again: now `two` is the least recently used.
    const past = new Date(Date.now() - 60_000);
    await fs.utimes(cache.fileOf(two), past, past);
    await cache.use(one, async () => undefined);
    await cache.use(three, async () => undefined);
    const exists = (s: { repo: string; commit: string }) => fs.stat(cache.fileOf(s)).then(() => true, () => false);
    expect([await exists(one), await exists(two), await exists(three)]).toEqual([true, false, true]);
    await cache.use(two, async () => undefined);
    expect(fetched).toEqual(['acme/app@1', 'acme/app@2', 'acme/other@3', 'acme/app@2']);
  });

  test('a failed fetch leaves nothing behind and is tried again next time', async () => {
    let fail = true;
    const cache = new SourceCache({
      dir,
      maxBytes: 10_000,
      fetch: async (source, dest) => {
        await fs.writeFile(dest, 'partial');
        if (fail) throw new Error('connection reset');
        await fetcher(source, dest);
      },
    });
    const source = { repo: 'acme/app', commit: commit('b') };
    await expect(cache.use(source, async () => undefined)).rejects.toThrow('connection reset');
    expect(await fs.readdir(path.dirname(cache.fileOf(source)))).toEqual([]);
    fail = false;
    await expect(cache.use(source, async (file) => (await fs.stat(file)).size)).resolves.toBe(600);
  });
});
