import { ConflictError } from '../../core/errors';
import { LfsValidationError } from './errors';

/** The Git LFS batch API (https://github.com/git-lfs/git-lfs/blob/main/docs/api/batch.md), the parts we serve. */
export type LfsOperation = 'download' | 'upload';

export const LFS_MEDIA_TYPE = 'application/vnd.git-lfs+json';
/** 5 GiB: GitHub's per-object limit, and more than fits a sensible single PUT. */
export const DEFAULT_MAX_OBJECT_BYTES = 5 * 1024 ** 3;
/** git-lfs sends 100 objects per batch by default; this leaves room and bounds the work per request. */
export const MAX_BATCH_OBJECTS = 1000;

const OID = /^[0-9a-f]{64}$/;

export interface BatchObject {
  oid: string;
  size: number;
}

/** One requested object: valid, or carrying the reason it is not (answered per object with 422). */
export type RequestedObject = BatchObject & { problem?: string };

export interface BatchRequest {
  operation: LfsOperation;
  objects: RequestedObject[];
}

export interface LfsAction {
  href: string;
  header: Record<string, string>;
  expires_in: number;
}

export interface BatchResponseObject {
  oid: string;
  size: number;
  /** true: the client must not add its own credentials; the action headers authorise the transfer. */
  authenticated?: boolean;
  actions?: Partial<Record<'download' | 'upload' | 'verify', LfsAction>>;
  error?: { code: number; message: string };
}

export function isOid(value: unknown): value is string {
  return typeof value === 'string' && OID.test(value);
}

/** Why `oid`/`size` cannot name an LFS object, or undefined when they can. */
export function objectProblem(oid: unknown, size: unknown, maxBytes: number): string | undefined {
  if (!isOid(oid)) return 'oid must be 64 lowercase hex digits (SHA-256)';
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return 'size must be a non-negative integer';
  if (size > maxBytes) return `size ${size} is over the limit of ${maxBytes} bytes per object`;
  return undefined;
}

/**
 * Validates a batch request body. Request-level faults throw (LfsValidationError → 422, an unknown
 * hash algorithm → 409 as the spec asks); a bad object only marks that object, so the rest of the
 * batch still proceeds, as git-lfs expects.
 */
export function parseBatchRequest(body: unknown, maxBytes: number): BatchRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new LfsValidationError(`the body must be a JSON batch request (Content-Type: ${LFS_MEDIA_TYPE})`);
  }
  const b = body as Record<string, unknown>;
  if (b.operation !== 'download' && b.operation !== 'upload') throw new LfsValidationError('operation must be "download" or "upload"');
  if (b.transfers !== undefined && (!Array.isArray(b.transfers) || !b.transfers.includes('basic'))) {
    throw new LfsValidationError('only the "basic" transfer is supported');
  }
  if (b.hash_algo !== undefined && b.hash_algo !== 'sha256') throw new ConflictError('only the sha256 hash algorithm is supported');
  if (!Array.isArray(b.objects)) throw new LfsValidationError('objects must be an array');
  if (b.objects.length > MAX_BATCH_OBJECTS) throw new LfsValidationError(`at most ${MAX_BATCH_OBJECTS} objects per batch`);
  const objects = b.objects.map((o: unknown): RequestedObject => {
    const rec = (typeof o === 'object' && o !== null ? o : {}) as Record<string, unknown>;
    const problem = objectProblem(rec.oid, rec.size, maxBytes);
    // Echo what was sent (as the spec's error objects do), coerced to the response's types.
    return { oid: String(rec.oid ?? ''), size: typeof rec.size === 'number' ? rec.size : -1, ...(problem ? { problem } : {}) };
  });
  return { operation: b.operation, objects };
}

/** Object-store key of an LFS object: per repository (no cross-repository existence leak), fanned out by oid prefix. */
export function lfsObjectKey(owner: string, repo: string, oid: string): string {
  if (!isOid(oid)) throw new LfsValidationError('oid must be 64 lowercase hex digits (SHA-256)');
  return `lfs/${owner}/${repo}/${oid.slice(0, 2)}/${oid.slice(2, 4)}/${oid}`;
}
