import type { IncomingMessage } from 'node:http';

/**
 * `Idempotency-Key` (draft-ietf-httpapi-idempotency-key-header): a client's promise that sending
 * the same POST again is safe. Only such a POST may be retried by the gateway, and only when its
 * body is small enough to hold in memory for the next attempt.
 */
export const IDEMPOTENCY_KEY_HEADER = 'idempotency-key';

/** Largest body kept in memory so a keyed POST can be sent again; larger ones are streamed once. */
export const MAX_REPLAY_BODY_BYTES = 1024 * 1024;

/** Printable ASCII, bounded: the key is logged and forwarded, so nothing else gets through. */
const WELL_FORMED = /^[\x21-\x7e]{1,255}$/;

/** Why an `Idempotency-Key` value is refused, or undefined (also when there is none). */
export function idempotencyKeyProblem(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  // The draft's form is a quoted sf-string; a bare token is accepted as well.
  const key = value.startsWith('"') && value.endsWith('"') && value.length >= 2 ? value.slice(1, -1) : value;
  return WELL_FORMED.test(key) ? undefined : 'Idempotency-Key must be 1 to 255 printable ASCII characters';
}

/**
 * Whether this POST may be buffered and retried: it carries an Idempotency-Key, declares a body of
 * at most MAX_REPLAY_BODY_BYTES (a chunked body's size is unknown up front: sent once), and is not
 * a push (`git-receive-pack` changes refs and runs hooks; it is never sent twice).
 */
export function replayablePost(req: IncomingMessage, path: string): boolean {
  if (req.method !== 'POST' || req.headers[IDEMPOTENCY_KEY_HEADER] === undefined) return false;
  if (path.endsWith('/git-receive-pack') || req.headers['transfer-encoding'] !== undefined) return false;
  const declared = Number(req.headers['content-length'] ?? 0);
  return Number.isSafeInteger(declared) && declared >= 0 && declared <= MAX_REPLAY_BODY_BYTES;
}

/** Reads a body whose length was declared and checked by `replayablePost`. */
export function readWholeBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
    req.once('close', () => {
      if (!req.complete) reject(new Error('the client went away while sending the body'));
    });
  });
}
