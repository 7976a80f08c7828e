import { randomUUID } from 'node:crypto';

/** An incoming X-Request-Id is kept only when it is short and plain; anything else is replaced. */
const WELL_FORMED = /^[A-Za-z0-9._:-]{8,128}$/;

export function requestIdFrom(incoming: string | undefined): string {
  return incoming && WELL_FORMED.test(incoming) ? incoming : randomUUID();
}
