import { randomBytes } from 'node:crypto';

/** W3C Trace Context `traceparent`: version 00, 32-hex trace id, 16-hex parent id, 2-hex flags. */
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * The traceparent to send upstream: the caller's trace continues (same trace id, our hop as the
 * new parent span); a missing or malformed one (or all-zero ids) starts a new trace.
 */
export function nextTraceparent(incoming: string | undefined): string {
  const m = incoming ? TRACEPARENT.exec(incoming.trim()) : null;
  const span = randomBytes(8).toString('hex');
  if (m && !/^0+$/.test(m[1]) && !/^0+$/.test(m[2])) return `00-${m[1]}-${span}-${m[3]}`;
  return `00-${randomBytes(16).toString('hex')}-${span}-01`;
}
