import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import type { Response } from 'express';
import client from 'prom-client';
import type { Redis } from '../core/redis';
import { InputError } from '../core/errors';
import { ensureVolumeId, PACK_FILE_HEADER } from '../core/pack-handoff';

export interface PackCacheOptions {
  /** Folder of cached responses (one file per key). */
  dir: string;
  /** `false` serves every fetch from its own upload-pack (for comparison; default true). */
  enabled: boolean;
  /** How long an entry is served after it was made. Default 5 minutes. */
  ttlMs: number;
  /** Disk budget; the oldest entries go first. Default 1 GiB. */
  maxDiskBytes: number;
  /** Responses up to this size are also kept in memory. Default 1 MiB. */
  memoryEntryBytes: number;
  /** Memory budget of those. Default 64 MiB. */
  memoryMaxBytes: number;
  /** Optional shared index (key → size) and counters, so every instance's hits show in one place. */
  redis?: Redis;
}

export type PackOutcome = 'memory' | 'disk' | 'shared' | 'produced' | 'uncached';

/** What produces a response: a git process whose stdout is the answer. */
export interface Producer {
  stdout: NodeJS.ReadableStream & { pause(): void; resume(): void };
  /** Resolves with git's exit code and the start of its stderr. */
  exited: Promise<{ code: number; stderr: string }>;
  kill(): void;
}

/** Output of a failed upload-pack up to this size is its error answer; more is a pack cut short. */
const MAX_REFUSAL_BYTES = 64 * 1024;

/**
 * How long a request that may be handed off waits for an identical one's answer to be complete.
 * Past it, it follows the growing file as before: a client that sees no byte for minutes (a huge
 * pack) would meet idle timeouts on the way.
 */
const HANDOFF_WAIT_MS = 20_000;
/** A handed-off file is kept this long after the handoff, whatever its age: the gateway opens it within milliseconds. */
const HANDOFF_GRACE_MS = 60_000;

const outcomes = new client.Counter({ name: 'dotgit_pack_cache_requests_total', help: 'upload-pack responses by where they came from', labelNames: ['outcome'] });
const spawned = new client.Counter({ name: 'dotgit_upload_pack_processes_total', help: 'git upload-pack processes started for fetches' });
// Bytes of the answers by where they came from (issue 14 item 2): what the cache saves git, in bytes; an uncached answer's are not known here.
const answeredBytes = new client.Counter({ name: 'dotgit_pack_cache_bytes_total', help: 'bytes of upload-pack responses by where they came from (memory, disk, shared, produced)', labelNames: ['outcome'] });
const handoffs = new client.Counter({ name: 'dotgit_pack_cache_handoffs_total', help: 'cached fetch answers handed to the gateway to stream from the shared folder (ADR 0040)' });

/** A response being produced: its bytes go to a file that every waiting client follows. */
class Production extends EventEmitter {
  size = 0;
  done = false;
  failure: Error | undefined;
  /** The whole answer of a git that refused the request (its ERR pkt-line): sent as is, never cached. */
  refusal: Buffer | undefined;
  /** Resolves when the production has ended, whichever way (then `done`, `refusal` or `failure` says how). */
  readonly settled: Promise<void>;
  settle!: () => void;
  constructor(readonly file: string) {
    super();
    this.setMaxListeners(0);
    this.settled = new Promise((resolve) => (this.settle = resolve));
  }
}

/**
 * Gitaly's pack-objects cache, for upload-pack: the answer to a fetch depends only on the
 * repository's refs and the request body, so identical fetches (a CI fleet cloning one commit) are
 * served from one git process. Concurrent identical requests share a single producer and stream
 * its output as it is written; finished answers stay on disk for a while (small ones in memory).
 */
export class PackCache {
  private readonly inflight = new Map<string, Production>();
  private readonly memory = new Map<string, Buffer>();
  private memoryBytes = 0;
  private sweeping: Promise<void> | undefined;
  /** When each key's file was last handed off: the sweep leaves it for HANDOFF_GRACE_MS. */
  private readonly handedOff = new Map<string, number>();
  private volume: Promise<string> | undefined;
  /** Counts by outcome (and handoffs, ADR 0040), for tests and /metrics. */
  readonly stats: Record<PackOutcome, number> & { processes: number; handoffs: number } = { memory: 0, disk: 0, shared: 0, produced: 0, uncached: 0, processes: 0, handoffs: 0 };

  constructor(private readonly o: PackCacheOptions) {
    // Written at start, so a gateway reading this folder finds the id before the first fetch.
    if (o.enabled) void this.volumeId().catch(() => undefined);
  }

  /** The folder's volume id (core/pack-handoff.ts); made on first use, tried again after a failure. */
  volumeId(): Promise<string> {
    this.volume ??= ensureVolumeId(this.o.dir).catch((err: unknown) => {
      this.volume = undefined;
      throw err;
    });
    return this.volume;
  }

  /** Whether a request naming `volume` (PACK_VOLUME_HEADER) reads this cache's folder. */
  async sharesVolume(volume: string | undefined): Promise<boolean> {
    if (!volume || !this.o.enabled) return false;
    return (await this.volumeId().catch(() => undefined)) === volume;
  }

  /** The cache key: repository, its refs, the protocol and the exact request. */
  static key(parts: { gitDir: string; refsFingerprint: string; protocol: string; body: Buffer }): string {
    const h = createHash('sha256');
    for (const p of [parts.gitDir, parts.refsFingerprint, parts.protocol]) h.update(p).update('\0');
    return h.update(parts.body).digest('hex');
  }

  /**
   * Answers one fetch. `acquire` takes a slot of the repository's concurrency limit; only making an
   * answer needs one (serving from memory, disk or a running producer costs no git process).
   * `handoff` (the caller reads this cache's folder, `sharesVolume`): a complete answer on disk is
   * not sent but named (PACK_FILE_HEADER), and one being produced is waited for (up to
   * HANDOFF_WAIT_MS) to be named too; the request that produces it, and small answers kept in
   * memory, are sent as before.
   */
  async serve(key: string, res: Response, contentType: string, start: () => Producer, acquire: () => Promise<() => void>, handoff = false): Promise<PackOutcome> {
    if (!this.o.enabled) {
      const release = await acquire();
      try {
        this.count('uncached');
        await pipeDirect(this.spawn(start), res, contentType);
      } finally {
        release();
      }
      return 'uncached';
    }
    const mem = this.memory.get(key);
    if (mem) {
      this.memory.delete(key); // refresh its place in the LRU order
      this.memory.set(key, mem);
      res.setHeader('Content-Type', contentType);
      res.end(mem);
      return this.count('memory', mem.length);
    }
    const running = this.inflight.get(key);
    if (running) {
      if (!(handoff && (await this.handOffWhenDone(running, key, res, contentType)))) await follow(running, res, contentType);
      return this.count('shared', running.size);
    }
    const file = this.fileOf(key);
    const stat = await fs.stat(file).catch(() => undefined);
    if (stat && Date.now() - stat.mtimeMs < this.o.ttlMs) {
      if (handoff) {
        this.handOff(key, res, contentType);
        return this.count('disk', stat.size);
      }
      const done = new Production(file);
      done.size = stat.size;
      done.done = true;
      await follow(done, res, contentType);
      return this.count('disk', stat.size);
    }
    // Another request may have started producing while we looked at the disk.
    const meanwhile = this.inflight.get(key);
    if (meanwhile) {
      if (!(handoff && (await this.handOffWhenDone(meanwhile, key, res, contentType)))) await follow(meanwhile, res, contentType);
      return this.count('shared', meanwhile.size);
    }
    const production = this.produce(key, file, start, acquire);
    await follow(production, res, contentType);
    return this.count('produced', production.size);
  }

  /** Names the complete file of `key` to the gateway instead of sending it (empty body). */
  private handOff(key: string, res: Response, contentType: string): void {
    this.handedOff.set(key, Date.now());
    this.stats.handoffs++;
    handoffs.inc();
    res.setHeader('Content-Type', contentType);
    res.setHeader('Cache-Control', 'no-cache');
    res.setHeader(PACK_FILE_HEADER, path.relative(this.o.dir, this.fileOf(key)).split(path.sep).join('/'));
    res.end();
  }

  /**
   * Waits (up to HANDOFF_WAIT_MS) for a running production to finish, then hands its file off.
   * False when it did not finish in time or ended without a cached file (a refusal, a failure):
   * the caller then follows it as before, which sends the refusal or raises the failure.
   */
  private async handOffWhenDone(p: Production, key: string, res: Response, contentType: string): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const settled = await Promise.race([p.settled.then(() => true), new Promise<false>((r) => (timer = setTimeout(() => r(false), HANDOFF_WAIT_MS)))]);
    clearTimeout(timer);
    if (!settled || !p.done || p.failure || p.refusal) return false;
    if (res.destroyed) return true; // the client left while waiting: nothing to send
    this.handOff(key, res, contentType);
    return true;
  }

  private count(outcome: PackOutcome, bytes?: number): PackOutcome {
    this.stats[outcome]++;
    outcomes.inc({ outcome });
    if (bytes) answeredBytes.inc({ outcome }, bytes);
    this.o.redis?.hincrby('dotgit:packcache:stats', outcome, 1).catch(() => undefined);
    return outcome;
  }

  private spawn(start: () => Producer): Producer {
    this.stats.processes++;
    spawned.inc();
    return start();
  }

  private fileOf(key: string): string {
    return path.join(this.o.dir, key.slice(0, 2), `${key}.pack-response`);
  }

  private produce(key: string, file: string, start: () => Producer, acquire: () => Promise<() => void>): Production {
    const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
    const production = new Production(tmp);
    this.inflight.set(key, production);
    void (async () => {
      let release: (() => void) | undefined;
      try {
        // Registered before waiting for a slot, so identical requests meanwhile join this one.
        release = await acquire();
        await fs.mkdir(path.dirname(file), { recursive: true });
        const out = createWriteStream(tmp);
        const p = this.spawn(start);
        p.stdout.on('data', (chunk: Buffer) => {
          if (!out.write(chunk, () => {
            production.size += chunk.length;
            production.emit('progress');
          })) {
            p.stdout.pause();
            out.once('drain', () => p.stdout.resume());
          }
        });
        const [{ code, stderr }] = await Promise.all([p.exited, new Promise((r) => p.stdout.on('end', r))]);
        await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
        production.size = (await fs.stat(tmp)).size;
        if (code !== 0) {
          // git's own refusal ("ERR upload-pack: not our ref …") is a complete answer the client
          // understands: send it whole (git http-backend does the same), but never as a cached pack.
          if (production.size > 0 && production.size <= MAX_REFUSAL_BYTES) {
            production.refusal = await fs.readFile(tmp);
            production.done = true;
            await fs.rm(tmp, { force: true });
            return;
          }
          const why = stderr.split('\n').find((l) => l.trim()) ?? `exit code ${code}`;
          throw new InputError(`git upload-pack refused the request: ${why.replace(/^fatal: /, '').slice(0, 300)}`);
        }
        await fs.rename(tmp, file);
        production.done = true;
        // Followers that opened the temp name keep their descriptor; new readers use the final file.
        if (production.size <= this.o.memoryEntryBytes) this.remember(key, await fs.readFile(file));
        this.o.redis?.hset('dotgit:packcache:index', key, String(production.size)).catch(() => undefined);
        void this.sweep();
      } catch (err) {
        production.failure = err as Error;
        await fs.rm(tmp, { force: true }).catch(() => undefined);
      } finally {
        release?.();
        this.inflight.delete(key);
        production.emit('progress');
        production.settle();
      }
    })();
    return production;
  }

  private remember(key: string, body: Buffer): void {
    this.memory.set(key, body);
    this.memoryBytes += body.length;
    for (const [k, v] of this.memory) {
      if (this.memoryBytes <= this.o.memoryMaxBytes) break;
      this.memory.delete(k);
      this.memoryBytes -= v.length;
    }
  }

  /** Drops expired entries, then the oldest ones while the folder is over its budget. */
  sweep(): Promise<void> {
    this.sweeping ??= (async () => {
      const files: { file: string; size: number; mtime: number }[] = [];
      for (const sub of await fs.readdir(this.o.dir).catch(() => [] as string[])) {
        for (const name of await fs.readdir(path.join(this.o.dir, sub)).catch(() => [] as string[])) {
          const file = path.join(this.o.dir, sub, name);
          if (name.includes('.tmp-')) {
            // Left by a crashed producer (live ones finish long before an hour).
            const st = await fs.stat(file).catch(() => undefined);
            if (st && Date.now() - st.mtimeMs > 3_600_000) await fs.rm(file, { force: true });
            continue;
          }
          if (!name.endsWith('.pack-response')) continue;
          const st = await fs.stat(file).catch(() => undefined);
          if (st) files.push({ file, size: st.size, mtime: st.mtimeMs });
        }
      }
      files.sort((a, b) => a.mtime - b.mtime);
      let total = files.reduce((n, f) => n + f.size, 0);
      for (const [key, at] of this.handedOff) if (Date.now() - at > HANDOFF_GRACE_MS) this.handedOff.delete(key);
      for (const f of files) {
        if (Date.now() - f.mtime < this.o.ttlMs && total <= this.o.maxDiskBytes) break;
        const key = path.basename(f.file, '.pack-response');
        if (this.handedOff.has(key)) continue; // the gateway may be opening it right now
        await fs.rm(f.file, { force: true });
        total -= f.size;
        this.o.redis?.hdel('dotgit:packcache:index', key).catch(() => undefined);
      }
    })().finally(() => (this.sweeping = undefined));
    return this.sweeping;
  }
}

/**
 * Streams a production's file to one client as it grows. The client's own pace sets the reads
 * (no buffering beyond one chunk). A producer that failed before any byte became a 400.
 */
async function follow(p: Production, res: Response, contentType: string): Promise<void> {
  let fd: fs.FileHandle | undefined;
  let position = 0;
  try {
    for (;;) {
      if (p.refusal) {
        if (position === 0) res.setHeader('Content-Type', contentType);
        res.end(p.refusal.subarray(position));
        return;
      }
      if (p.failure && position === 0) throw p.failure;
      if (p.failure) {
        res.destroy(p.failure);
        return;
      }
      if (position < p.size) {
        fd ??= await fs.open(p.file, 'r').catch(async () => fs.open(p.file.replace(/\.tmp-[0-9a-f]+$/, ''), 'r'));
        // A fresh buffer per read: res.write keeps a reference until the bytes are flushed.
        const buf = Buffer.allocUnsafe(Math.min(256 * 1024, p.size - position));
        const { bytesRead } = await fd.read(buf, 0, buf.length, position);
        if (bytesRead === 0) throw new Error('pack cache file shrank');
        if (position === 0) res.setHeader('Content-Type', contentType);
        position += bytesRead;
        if (!res.write(buf.subarray(0, bytesRead))) await writable(res);
        if (res.destroyed) return;
        continue;
      }
      if (p.done) {
        if (position === 0) res.setHeader('Content-Type', contentType);
        res.end();
        return;
      }
      await new Promise((r) => p.once('progress', r));
    }
  } finally {
    await fd?.close();
  }
}

/** Resolves when the client can take more, or has gone (then the caller sees `res.destroyed`). */
function writable(res: Response): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

/** Uncached: git's output straight to the client. */
async function pipeDirect(p: Producer, res: Response, contentType: string): Promise<void> {
  let started = false;
  p.stdout.on('data', (chunk: Buffer) => {
    if (!started) {
      started = true;
      res.setHeader('Content-Type', contentType);
    }
    if (!res.write(chunk)) {
      p.stdout.pause();
      res.once('drain', () => p.stdout.resume());
    }
  });
  res.on('close', () => {
    if (!res.writableFinished) p.kill();
  });
  const { code, stderr } = await p.exited;
  if (!started && code !== 0) {
    const why = stderr.split('\n').find((l) => l.trim()) ?? `exit code ${code}`;
    throw new InputError(`git upload-pack refused the request: ${why.replace(/^fatal: /, '').slice(0, 300)}`);
  }
  res.end();
}
