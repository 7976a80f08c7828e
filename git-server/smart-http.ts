import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Request, Response } from 'express';
import { createGunzip } from 'node:zlib';
import type { Duplex, Readable } from 'node:stream';
import { InputError, PayloadTooLargeError } from '../core/errors';
import { runGit } from '../core/git';
import { serveHookChannel, type HookAnswer, type HookRequest } from './hook-channel';
import type { Producer } from './pack-cache';

export type GitService = 'git-upload-pack' | 'git-receive-pack';

/** Git-Protocol values as git sends them (`version=2`, `version=2:object-format=sha1`); anything else is refused. */
const GIT_PROTOCOL = /^[A-Za-z0-9=:._-]{1,256}$/;

export function gitProtocolEnv(req: Request): Record<string, string> {
  const value = req.header('git-protocol');
  if (value === undefined) return {};
  if (!GIT_PROTOCOL.test(value)) throw new InputError('Git-Protocol header has characters outside [A-Za-z0-9=:._-]');
  return { GIT_PROTOCOL: value };
}

export function pktLine(text: string): string {
  return (text.length + 4).toString(16).padStart(4, '0') + text;
}

export function newPushId(): string {
  return randomBytes(8).toString('hex');
}

/** A client that disconnects leaves git blocked on a full pipe forever; end it instead. */
function killWhenClientLeaves(res: Response, child: ChildProcess): void {
  res.on('close', () => {
    if (!res.writableFinished && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      child.stdout?.destroy(); // unread output would otherwise keep 'close' (and our lock) pending
    }
  });
}

/** `GET info/refs?service=…`: the ref advertisement, preceded by the smart-HTTP service line (small; returned whole so it can be cached). */
export async function advertiseRefs(gitDir: string, service: GitService, env: Record<string, string>, extraArgs: string[] = []): Promise<Buffer> {
  const r = await runGit([...extraArgs, service.slice(4), '--stateless-rpc', '--advertise-refs', gitDir], { env });
  if (r.code !== 0) throw new Error(`git ${service.slice(4)} --advertise-refs failed: ${r.stderr.trim().slice(0, 300)}`);
  return Buffer.concat([Buffer.from(pktLine(`# service=${service}\n`) + '0000'), r.stdout]);
}

/**
 * `POST git-upload-pack` / `git-receive-pack`: the request body (gunzipped when the client sent
 * gzip) streams into `git <service> --stateless-rpc`, its output streams back; nothing is buffered whole.
 */
export function runService(
  req: Request,
  res: Response,
  service: GitService,
  gitDir: string,
  env: Record<string, string>,
  extraArgs: string[] = [],
  /** A push's hooks (ADR 0047): served on fd 3, which git hands every hook it runs. */
  hooks?: (request: HookRequest) => Promise<HookAnswer>,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const encoding = (req.header('content-encoding') ?? '').toLowerCase();
    if (encoding && encoding !== 'gzip' && encoding !== 'identity') {
      reject(new InputError(`unsupported Content-Encoding ${encoding}`));
      return;
    }
    const child = spawn('git', [...extraArgs, service.slice(4), '--stateless-rpc', gitDir], {
      env: { ...process.env, ...env, ...(hooks ? { DOTGIT_HOOK_FD: '3' } : {}) },
      stdio: hooks ? ['pipe', 'pipe', 'pipe', 'pipe'] : ['pipe', 'pipe', 'pipe'],
    });
    if (hooks) {
      const channel = child.stdio[3] as Duplex;
      serveHookChannel(channel, hooks);
      // Hooks run while receive-pack does; a process it leaves behind (a detached `gc --auto`)
      // keeps its copy of fd 3, which must not hold the push's answer (and lock) open.
      child.once('exit', () => channel.destroy());
    }
    let body: Readable = req;
    // Why the body could not be read (not gzip, cut off): git then only sees its input end early,
    // so this, not git's "the remote end hung up", is what the client is told.
    let bodyError: Error | undefined;
    if (encoding === 'gzip') {
      const gunzip = createGunzip();
      gunzip.on('error', (err) => {
        bodyError ??= err;
        child.stdin.destroy();
      });
      body = req.pipe(gunzip);
    }
    body.pipe(child.stdin);
    child.stdin.on('error', () => undefined); // git may exit early on bad input
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 4096) stderr += d.toString();
    });
    // The answer starts with git's first byte: if git gives up before writing anything (garbage
    // pkt-lines, a truncated request), the client gets a 400 that says why instead of an empty 200.
    let answering = false;
    child.stdout.once('data', (first: Buffer) => {
      answering = true;
      res.setHeader('Content-Type', `application/x-${service}-result`);
      res.setHeader('Cache-Control', 'no-cache');
      res.write(first);
      child.stdout.pipe(res);
    });
    killWhenClientLeaves(res, child);
    child.on('error', reject);
    child.on('close', (code) => {
      if (answering) resolve(code ?? -1); // the pipe ends the response
      else if (code === 0) {
        res.status(200).setHeader('Content-Type', `application/x-${service}-result`);
        res.end();
        resolve(0);
      } else if (bodyError) {
        reject(new InputError(`could not read the request body: ${bodyError.message}`));
      } else {
        const why = stderr.split('\n').find((l) => l.trim()) ?? `exit code ${code}`;
        reject(new InputError(`git ${service.slice(4)} refused the request: ${why.replace(/^fatal: /, '').slice(0, 300)}`));
      }
    });
  });
}

/** Request bodies of fetches are read whole (they are wants and haves, not packs) to key the cache. */
export const MAX_FETCH_REQUEST_BYTES = 64 * 1024 * 1024;

/** The request body, gunzipped when the client sent gzip; 413 past the limit. */
export async function readRequestBody(req: Request, limit = MAX_FETCH_REQUEST_BYTES): Promise<Buffer> {
  const encoding = (req.header('content-encoding') ?? '').toLowerCase();
  if (encoding && encoding !== 'gzip' && encoding !== 'identity') throw new InputError(`unsupported Content-Encoding ${encoding}`);
  const source: Readable = encoding === 'gzip' ? req.pipe(createGunzip()) : req;
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of source) {
      size += (chunk as Buffer).length;
      if (size > limit) throw new PayloadTooLargeError(`fetch request bodies are limited to ${limit} bytes`);
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    if (err instanceof PayloadTooLargeError) throw err;
    throw new InputError(`could not read the request body: ${(err as Error).message}`);
  }
  return Buffer.concat(chunks);
}

/**
 * A fingerprint of every ref of the repository and of HEAD (the default branch, which `ls-refs`
 * answers as a symref): the part of a fetch's answer that can change.
 */
export async function refsFingerprint(gitDir: string): Promise<string> {
  const [r, head] = await Promise.all([
    runGit(['--git-dir', gitDir, 'for-each-ref', '--format=%(objectname) %(refname)']),
    fs.readFile(path.join(gitDir, 'HEAD')).catch(() => Buffer.alloc(0)),
  ]);
  if (r.code !== 0) throw new Error(`git for-each-ref failed: ${r.stderr.trim()}`);
  return createHash('sha256').update(head).update('\0').update(r.stdout).digest('hex');
}

/** `git upload-pack --stateless-rpc` answering one request body. */
export function startUploadPack(gitDir: string, env: Record<string, string>, body: Buffer): Producer {
  const child = spawn('git', ['upload-pack', '--stateless-rpc', gitDir], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    if (stderr.length < 4096) stderr += d.toString();
  });
  child.stdin.on('error', () => undefined);
  child.stdin.end(body);
  const exited = new Promise<{ code: number; stderr: string }>((resolve) => {
    child.on('error', (err) => resolve({ code: -1, stderr: err.message }));
    child.on('close', (code) => resolve({ code: code ?? -1, stderr }));
  });
  return {
    stdout: child.stdout,
    exited,
    // Destroying stdout too: a paused pipe with unread bytes would keep 'close' from ever firing.
    kill: () => {
      child.kill('SIGKILL');
      child.stdout.destroy();
    },
  };
}
