import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Request, RequestHandler, Response } from 'express';
import type { Db } from '../core/db';
import { ConflictError, UnprocessableError } from '../core/errors';
import type { Logger } from '../core/logger';
import type { Principal } from '../core/principal';
import type { SecretBox } from '../core/secret-box';
import { claimIdempotencyKey, completeIdempotencyKey, findIdempotencyKey, releaseIdempotencyKey, takeOverStaleIdempotencyKey } from '../core/stores/idempotency-store';

/**
 * `Idempotency-Key` on every POST (draft-ietf-httpapi-idempotency-key-header): the first request
 * with a key runs and its final answer is kept; the same request again (same caller, key, method,
 * path and body) gets that answer back with `Idempotent-Replayed: true` and has no second effect.
 * The gateway checks the header's form (1–255 printable ASCII) before it gets here.
 */
export const REPLAYED_HEADER = 'Idempotent-Replayed';

/**
 * How long a first request may go unanswered before a retry with its key may run it again: only
 * an api that died mid-request leaves a row unanswered that long. Longer than the gateway's 30 s
 * per attempt, so a gateway retry never overtakes a first attempt that is merely slow.
 */
export const IN_FLIGHT_LEASE_SECONDS = 60;

/** Answers larger than this are not kept (POST answers here are small JSON; this bounds a row). */
const MAX_STORED_BYTES = 256 * 1024;

/** Final answers are kept: 2xx and 4xx, except 408 and 429, which say "try again later" (as 5xx do). */
export function storableStatus(status: number): boolean {
  return (status >= 200 && status < 300) || (status >= 400 && status < 500 && status !== 408 && status !== 429);
}

/** The key as sent: the draft's quoted sf-string form and a bare token name the same key. */
export function normalizeKey(value: string): string {
  return value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
}

/**
 * Whose key it is: the user and the very token (with its scopes), so an answer made under one
 * token's authority is never handed to another, and two callers never share a key.
 */
export function principalKey(p: Principal): string {
  return `u${p.userId}:t${p.tokenId}:${[...p.scopes].sort().join(',')}`;
}

/** What makes two requests "the same request": method, path with query, and the body's exact bytes. */
export function requestFingerprint(method: string, url: string, body: Buffer | undefined): string {
  return createHash('sha256').update(`${method} ${url}\n`).update(body ?? Buffer.alloc(0)).digest('hex');
}

const rawBodies = new WeakMap<IncomingMessage, Buffer>();

/** `verify` hook of the JSON body parser: keeps the body's bytes for the fingerprint. */
export function keepRawBody(req: IncomingMessage, _res: ServerResponse, buf: Buffer): void {
  rawBodies.set(req, buf);
}

interface StoredAnswer {
  contentType?: string;
  location?: string;
  body: string; // base64
}

type Begin = { kind: 'run' } | { kind: 'mismatch' } | { kind: 'busy' } | { kind: 'done'; status: number; answer: StoredAnswer };

/** Rows of `idempotency_keys`. Answers are sealed: they can hold secrets (a new token is shown once). */
export class IdempotencyStore {
  constructor(
    private readonly db: Db,
    private readonly box: SecretBox,
  ) {}

  /** Claims the key for this request, or says why not: another request, still running, or answered. */
  async begin(principal: string, key: string, fingerprint: string): Promise<Begin> {
    // A row can vanish between the statements (a 5xx releases it): then claim again.
    for (let attempt = 0; attempt < 3; attempt++) {
      if (await claimIdempotencyKey(this.db, principal, key, fingerprint)) return { kind: 'run' };
      const row = await findIdempotencyKey(this.db, principal, key);
      if (!row) continue;
      if (row.fingerprint !== fingerprint) return { kind: 'mismatch' };
      if (row.status !== null) return { kind: 'done', status: Number(row.status), answer: JSON.parse(this.box.open(row.response as string)) as StoredAnswer };
      // Unanswered: still running, unless its api died; then this request takes it over.
      return (await takeOverStaleIdempotencyKey(this.db, principal, key, IN_FLIGHT_LEASE_SECONDS)) ? { kind: 'run' } : { kind: 'busy' };
    }
    return { kind: 'busy' };
  }

  async complete(principal: string, key: string, status: number, answer: StoredAnswer): Promise<void> {
    await completeIdempotencyKey(this.db, principal, key, status, this.box.seal(JSON.stringify(answer)));
  }

  /** Forgets an unanswered claim, so the request can be sent again (after a 5xx, or when no answer could be kept). */
  async release(principal: string, key: string): Promise<void> {
    await releaseIdempotencyKey(this.db, principal, key);
  }
}

function header(res: Response, name: string): string | undefined {
  const v = res.getHeader(name);
  return v === undefined ? undefined : String(v);
}

/**
 * Keeps the answer before it leaves: `res.end` waits for the row to be written, so a retry that
 * arrives once the client has the answer always finds it stored.
 */
function keepAnswer(res: Response, store: IdempotencyStore, principal: string, key: string, log: Logger): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let settled = false;
  const collect = (chunk: unknown, encoding?: unknown) => {
    if (chunk === undefined || chunk === null || typeof chunk === 'function') return;
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
    size += buf.length;
    if (size <= MAX_STORED_BYTES) chunks.push(buf);
  };
  const write = res.write.bind(res) as (...args: unknown[]) => boolean;
  const end = res.end.bind(res) as (...args: unknown[]) => Response;
  (res as unknown as { write: (...args: unknown[]) => boolean }).write = (...args: unknown[]) => {
    collect(args[0], args[1]);
    return write(...args);
  };
  (res as unknown as { end: (...args: unknown[]) => Response }).end = (...args: unknown[]) => {
    collect(args[0], args[1]);
    settled = true;
    const status = res.statusCode;
    const keep = storableStatus(status) && size <= MAX_STORED_BYTES;
    const saved = keep
      ? store.complete(principal, key, status, { contentType: header(res, 'content-type'), location: header(res, 'location'), body: Buffer.concat(chunks).toString('base64') })
      : store.release(principal, key);
    saved
      .catch(async (err: unknown) => {
        log.warn({ err, status }, 'could not keep the answer of an Idempotency-Key request; the key is released');
        await store.release(principal, key).catch(() => undefined);
      })
      .finally(() => end(...args));
    return res;
  };
  // The answer never came (the connection was cut): the claim must not block retries for the lease.
  res.once('close', () => {
    if (!settled) void store.release(principal, key).catch(() => undefined);
  });
}

/** The middleware (after authentication and the body parser); only POSTs with a key and a caller. */
export function idempotency(store: IdempotencyStore, log: Logger): RequestHandler {
  return (req: Request, res: Response, next) => {
    const raw = req.header('idempotency-key');
    if (req.method !== 'POST' || raw === undefined || !req.principal) {
      next();
      return;
    }
    const key = normalizeKey(raw);
    const principal = principalKey(req.principal);
    store
      .begin(principal, key, requestFingerprint(req.method, req.originalUrl, rawBodies.get(req)))
      .then((found) => {
        switch (found.kind) {
          case 'mismatch':
            throw new UnprocessableError('this Idempotency-Key was already used for a different request (method, path or body); send a new request with a new key');
          case 'busy':
            res.setHeader('Retry-After', '1');
            throw new ConflictError('a request with this Idempotency-Key is still being processed; retry once it has been answered');
          case 'done':
            res.status(found.status).setHeader(REPLAYED_HEADER, 'true');
            if (found.answer.contentType) res.setHeader('Content-Type', found.answer.contentType);
            if (found.answer.location) res.setHeader('Location', found.answer.location);
            res.end(Buffer.from(found.answer.body, 'base64'));
            return;
          case 'run':
            keepAnswer(res, store, principal, key, req.log ?? log);
            next();
        }
      })
      .catch(next);
  };
}
