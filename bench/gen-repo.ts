/**
 * Generates a deterministic repository of realistic shape with `git fast-import`: about 2,000 text
 * files (source-like lines, 0.5–48 KiB each) and a few dozen incompressible binary assets in the
 * first commit, then a history where every commit edits a handful of files, sometimes adds one,
 * and now and then replaces an asset. Fast: the content is produced in memory and streamed.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { Git } from './lib';

export interface RepoShape {
  commits: number;
  textFiles: number;
  binaryFiles: number;
  seed: number;
}

export const DEFAULT_SHAPE: RepoShape = { commits: 300, textFiles: 2000, binaryFiles: 32, seed: 20240101 };

export interface GeneratedRepo {
  /** Files in the tip commit. */
  files: number;
  commits: number;
  /** Bytes of the tip tree (checkout size). */
  treeBytes: number;
  /** Bytes of the packed repository on disk. */
  packBytes: number;
}

/** mulberry32: small, fast, deterministic. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const EXTENSIONS = ['c', 'h', 'go', 'py', 'rs', 'md', 'txt', 'yaml'];
const PUNCT = [' ', ' ', ' ', ' ', '.', '(', ')', ', ', ' = ', '_', '; ', '->'];

export async function generateRepo(gitDir: string, git: Git, shape: RepoShape = DEFAULT_SHAPE): Promise<GeneratedRepo> {
  const rnd = prng(shape.seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;

  const vocab: string[] = [];
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  for (let i = 0; i < 4096; i++) {
    let w = '';
    for (let n = int(2, 10); n > 0; n--) w += letters[int(0, 25)];
    vocab.push(w);
  }
  const line = (): string => {
    let s = '  '.repeat(int(0, 4));
    for (let n = int(2, 9); n > 0; n--) s += pick(vocab) + pick(PUNCT);
    return s.trimEnd();
  };
  const textOfSize = (bytes: number): string[] => {
    const lines: string[] = [];
    let size = 0;
    while (size < bytes) {
      const l = line();
      lines.push(l);
      size += l.length + 1;
    }
    return lines;
  };
  const logUniform = (lo: number, hi: number) => Math.round(Math.exp(Math.log(lo) + rnd() * (Math.log(hi) - Math.log(lo))));
  const binary = (bytes: number): Buffer => {
    const words = new Uint32Array(Math.ceil(bytes / 4));
    for (let i = 0; i < words.length; i++) words[i] = (rnd() * 4294967296) >>> 0;
    return Buffer.from(words.buffer, 0, bytes);
  };

  const texts = new Map<string, string[]>();
  const binaries = new Map<string, number>();
  const newTextPath = () => {
    for (;;) {
      const p = `src/mod${int(0, 39)}/pkg${int(0, 9)}/file${int(0, 99999)}.${pick(EXTENSIONS)}`;
      if (!texts.has(p)) return p;
    }
  };

  await git.run(['init', '--bare', '--quiet', '--initial-branch=main', gitDir]);
  const fi = spawn('git', ['fast-import', '--quiet', '--done'], { cwd: gitDir, env: { ...process.env, GIT_DIR: gitDir }, stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  fi.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const closed = new Promise<number>((resolve, reject) => {
    fi.on('error', reject);
    fi.on('close', (code) => resolve(code ?? -1));
  });
  const out: Writable = fi.stdin;
  out.on('error', () => undefined); // reported through the exit code and stderr
  const write = async (chunk: string | Buffer) => {
    if (!out.write(chunk)) await Promise.race([once(out, 'drain'), closed]);
  };
  const data = async (content: string | Buffer) => {
    const buf = typeof content === 'string' ? Buffer.from(content) : content;
    await write(`data ${buf.length}\n`);
    await write(buf);
    await write('\n');
  };
  const modifyText = async (p: string) => {
    await write(`M 100644 inline ${p}\n`);
    await data(texts.get(p)!.join('\n') + '\n');
  };
  const modifyBinary = async (p: string) => {
    await write(`M 100644 inline ${p}\n`);
    await data(binary(binaries.get(p)!));
  };

  const base = Date.UTC(2024, 0, 1) / 1000;
  for (let c = 1; c <= shape.commits; c++) {
    const when = base + c * 3600 + int(0, 3599);
    await write(`commit refs/heads/main\nmark :${c}\n`);
    await write(`author Bench <bench@example.com> ${when} +0000\ncommitter Bench <bench@example.com> ${when} +0000\n`);
    await data(c === 1 ? 'Initial import\n' : `Change ${c}: ${line().trim()}\n`);
    if (c > 1) await write(`from :${c - 1}\n`);
    if (c === 1) {
      for (let i = 0; i < shape.textFiles; i++) {
        const p = newTextPath();
        texts.set(p, textOfSize(logUniform(512, 48 * 1024)));
        await modifyText(p);
      }
      for (let i = 0; i < shape.binaryFiles; i++) {
        const p = `assets/img${i}.bin`;
        binaries.set(p, int(50, 400) * 1024);
        await modifyBinary(p);
      }
      continue;
    }
    const paths = [...texts.keys()];
    for (let n = int(6, 12); n > 0; n--) {
      const p = pick(paths);
      const lines = texts.get(p)!;
      // Replace a few lines somewhere and add a few: the edits of an ordinary change.
      const at = int(0, Math.max(0, lines.length - 1));
      lines.splice(at, int(0, 6), ...Array.from({ length: int(1, 10) }, line));
      await modifyText(p);
    }
    if (rnd() < 0.3) {
      const p = newTextPath();
      texts.set(p, textOfSize(logUniform(512, 16 * 1024)));
      await modifyText(p);
    }
    if (rnd() < 0.08) {
      const p = pick([...binaries.keys()]);
      await modifyBinary(p);
    }
  }
  await write('done\n');
  out.end();
  const code = await closed;
  if (code !== 0) throw new Error(`git fast-import exited ${code}: ${stderr.trim()}`);
  // fast-import stores whole blobs here; a full repack finds the deltas a real history would have.
  await git.run(['repack', '-a', '-d', '-f', '-q'], gitDir);

  const counted = await git.run(['count-objects', '-v'], gitDir);
  const sizePack = /size-pack: (\d+)/.exec(counted.stdout);
  let treeBytes = 0;
  for (const lines of texts.values()) treeBytes += lines.reduce((n, l) => n + l.length + 1, 0);
  for (const size of binaries.values()) treeBytes += size;
  return {
    files: texts.size + binaries.size,
    commits: shape.commits,
    treeBytes,
    packBytes: sizePack ? Number(sizePack[1]) * 1024 : NaN,
  };
}

export interface BigRepo {
  files: number;
  /** Bytes of file content (all incompressible). */
  bytes: number;
  packBytes: number;
}

/** Size of each file of the big repository: enough files that a push keeps its pack (above git's
 * transfer.unpackLimit of 100 objects at 500 MiB) instead of exploding it into loose objects. */
const BIG_FILE_BYTES = 4 * 1024 * 1024;

/**
 * A bare repository holding `mib` MiB of random (incompressible) bytes in 4 MiB files, one commit.
 * Streamed into `git fast-import` without compression (zlib cannot shrink random data, only spend
 * time on it), and with `core.bigFileThreshold=1m` so `git push` does not search deltas in it.
 * About 6 s for 500 MiB.
 */
export async function generateBigRepo(gitDir: string, git: Git, mib: number): Promise<BigRepo> {
  const total = Math.round(mib * 1024 * 1024);
  await git.run(['init', '--bare', '--quiet', '--initial-branch=main', gitDir]);
  await git.run(['--git-dir', gitDir, 'config', 'core.bigFileThreshold', '1m']);
  await git.run(['--git-dir', gitDir, 'config', 'core.compression', '0']);
  // fastimport.unpackLimit=0: keep fast-import's pack even with few objects (the default explodes
  // packs of under 100 objects into loose objects, which costs a zlib pass over everything).
  const fi = spawn('git', ['-c', 'fastimport.unpackLimit=0', 'fast-import', '--quiet', '--done'], {
    cwd: gitDir,
    env: { ...process.env, GIT_DIR: gitDir },
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  let stderr = '';
  fi.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const closed = new Promise<number>((resolve, reject) => {
    fi.on('error', reject);
    fi.on('close', (code) => resolve(code ?? -1));
  });
  const out: Writable = fi.stdin;
  out.on('error', () => undefined); // reported through the exit code and stderr
  const write = async (chunk: string | Buffer) => {
    if (!out.write(chunk)) await Promise.race([once(out, 'drain'), closed]);
  };
  const sizes: number[] = [];
  for (let left = total; left > 0; left -= BIG_FILE_BYTES) sizes.push(Math.min(BIG_FILE_BYTES, left));
  for (let i = 0; i < sizes.length; i++) {
    await write(`blob\nmark :${i + 1}\ndata ${sizes[i]}\n`);
    for (let off = 0; off < sizes[i]!; off += 1 << 20) await write(randomBytes(Math.min(1 << 20, sizes[i]! - off)));
    await write('\n');
  }
  const when = Math.floor(Date.UTC(2024, 0, 1) / 1000);
  const message = `${sizes.length} files of random bytes\n`;
  await write(`commit refs/heads/main\ncommitter Bench <bench@example.com> ${when} +0000\ndata ${Buffer.byteLength(message)}\n${message}`);
  for (let i = 0; i < sizes.length; i++) await write(`M 100644 :${i + 1} data/blob${String(i).padStart(4, '0')}.bin\n`);
  await write('done\n');
  out.end();
  const code = await closed;
  if (code !== 0) throw new Error(`git fast-import exited ${code}: ${stderr.trim()}`);
  const counted = await git.run(['count-objects', '-v'], gitDir);
  const sizePack = /size-pack: (\d+)/.exec(counted.stdout);
  return { files: sizes.length, bytes: total, packBytes: sizePack ? Number(sizePack[1]) * 1024 : NaN };
}
