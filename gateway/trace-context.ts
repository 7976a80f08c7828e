import { randomBytes } from 'node:crypto';

/** W3C Trace Context `traceparent`: version 00, 32-hex trace id, 16-hex parent id, 2-hex flags. */
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * The traceparent to send upstream: the caller's trace continues (same trace id, our hop as the
 * new parent span); a missing or malformed one (or all-zero ids) starts a new trace.
 */
export function nextTraceparent(incoming: string | undefined): string {
  const m = incoming ? TRACEPARENT.exec(incoming.trim()) : null;
  const span = randomHex(8);
  if (m && !/^0+$/.test(m[1]) && !/^0+$/.test(m[2])) return `00-${m[1]}-${span}-${m[3]}`;
  return `00-${randomHex(16)}-${span}-01`;
}

// Random bytes drawn from a pooled buffer: one randomBytes call per 512 ids instead of one per id
// (the per-call cost showed in the gateway's profile). Ids need uniqueness, not secrecy.
let pool = Buffer.alloc(0);
let offset = 0;
function randomHex(bytes: number): string {
  if (offset + bytes > pool.length) {
    pool = randomBytes(8192);
    offset = 0;
  }
  offset += bytes;
  return pool.toString('hex', offset - bytes, offset);
}
