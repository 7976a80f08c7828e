import express, { type Request } from 'express';
import { pipeline } from 'node:stream/promises';
import type { Db } from '../../core/db';
import { NotFoundError, PayloadTooLargeError } from '../../core/errors';
import { route } from '../../core/http';
import type { Logger } from '../../core/logger';
import type { ObjectStore } from '../../core/object-store';
import { grantTransfer, repoFor } from './access';
import { answerBatch } from './batch-answer';
import { DEFAULT_MAX_OBJECT_BYTES, LFS_MEDIA_TYPE, isOid, objectProblem, parseBatchRequest } from './batch';
import { LfsValidationError } from './errors';
import { LfsObjects } from './objects';
import { lfsErrors, sendLfs } from './respond';
import { VerifyingStream } from './verifying-stream';

export interface LfsRouterOptions {
  db: Db;
  /** A tenant's shard database (ADR 0025); `db` holds every tenant without it. */
  dbOf?: (tenantId: number) => Db;
  /** The shard database of the tenant named in the URL; `db` without it. */
  dbOfOwner?: (owner: string) => Promise<Db>;
  log: Logger;
  /** Where the objects' bytes go (the configured store, `core/object-store-factory.ts`). */
  store: ObjectStore;
  /** Base URL clients reach the gateway on; the action hrefs are built on it. */
  publicUrl: string;
  /** Key material of the action tokens (the platform's internal secret; a derived key is used). */
  internalSecret: string;
  /** Largest object accepted. Default 5 GiB. */
  maxObjectBytes?: number;
  /** Lifetime of the action tokens handed out by the batch API. Default one hour. */
  actionTtlSeconds?: number;
}

const BASE = '/:owner/:repo.git/info/lfs';
// git-lfs sends application/vnd.git-lfs+json; plain JSON is accepted for curl and scripts.
const lfsJson = express.json({ limit: '1mb', type: [LFS_MEDIA_TYPE, 'application/json'] });

/**
 * The Git LFS API of the git-server: batch (download, upload; transfer `basic`), object GET/PUT,
 * verify, and an empty lock list so `git push` does not complain. Mounted behind `requireIdentity`,
 * so `req.principal` is the caller the gateway vouched for.
 */
export function createLfsRouter(o: LfsRouterOptions): express.Router {
  const maxBytes = o.maxObjectBytes ?? DEFAULT_MAX_OBJECT_BYTES;
  const ttlSeconds = o.actionTtlSeconds ?? 3600;
  const objects = new LfsObjects(o.dbOf ?? (() => o.db), o.store);
  const dbFor = async (req: Request): Promise<Db> => (o.dbOfOwner ? o.dbOfOwner(String(req.params.owner)) : o.db);
  const router = express.Router();

  router.post(`${BASE}/objects/batch`, lfsJson, route(async (req, res) => {
    // Authorise before validating, so an anonymous client is asked for credentials first.
    const body = req.body as { operation?: unknown } | undefined;
    const repo = await repoFor(await dbFor(req), req, body?.operation === 'upload' ? 'write' : 'read');
    const request = parseBatchRequest(req.body, maxBytes);
    const answer = await answerBatch({ repo, objects, secret: o.internalSecret, publicUrl: o.publicUrl, ttlSeconds }, request);
    sendLfs(res, 200, { transfer: 'basic', hash_algo: 'sha256', objects: answer });
  }));

  router.get(`${BASE}/objects/:oid`, route(async (req, res) => {
    const oid = oidParam(req);
    const { repo } = await grantTransfer(await dbFor(req), o.internalSecret, req, 'download', oid);
    const size = await objects.sizeOf(repo, oid);
    if (size === undefined) throw new NotFoundError(`object ${oid} does not exist`);
    const body = await objects.get(repo, oid);
    // No Range support: git-lfs restarts a resumed download from zero when it gets a 200.
    res.status(200).set({ 'content-type': 'application/octet-stream', 'content-length': String(size) });
    await pipeline(body, res);
  }));

  router.put(`${BASE}/objects/:oid`, route(async (req, res) => {
    const oid = oidParam(req);
    const grant = await grantTransfer(await dbFor(req), o.internalSecret, req, 'upload', oid);
    const expected = expectedUploadSize(req, grant.size, maxBytes);
    const verifying = new VerifyingStream(oid, expected, maxBytes);
    // pipe, not pipeline: a content error must not destroy the request's socket, or the 422
    // could never be answered. A client that goes away fails the store's write instead.
    req.on('error', (err) => verifying.destroy(err));
    req.on('close', () => {
      if (!req.complete) verifying.destroy(new Error('the client went away during the upload'));
    });
    req.pipe(verifying);
    const size = await objects.put(grant.repo, oid, verifying).catch((err: unknown) => {
      // Read and drop the rest of a refused body rather than closing the connection: the gateway
      // (and clients) treat a connection closed mid-upload as a failure, not as this answer.
      req.unpipe(verifying);
      req.resume();
      throw err;
    });
    (req.log ?? o.log).info({ repo: `${grant.repo.owner}/${grant.repo.name}`, oid, size }, 'lfs object stored');
    res.status(200).end();
  }));

  router.post(`${BASE}/objects/:oid/verify`, lfsJson, route(async (req, res) => {
    const oid = oidParam(req);
    const { repo } = await grantTransfer(await dbFor(req), o.internalSecret, req, 'upload', oid);
    const b = (req.body ?? {}) as { oid?: unknown; size?: unknown };
    const problem = objectProblem(b.oid, b.size, maxBytes);
    if (problem) throw new LfsValidationError(problem);
    if (b.oid !== oid) throw new LfsValidationError(`the body names ${String(b.oid)}, the URL ${oid}`);
    const stored = await objects.sizeOf(repo, oid);
    if (stored === undefined) throw new NotFoundError(`object ${oid} was not uploaded`);
    if (stored !== b.size) throw new LfsValidationError(`size mismatch: the stored object is ${stored} bytes, not ${String(b.size)}`);
    sendLfs(res, 200, {});
  }));

  // Locking is not offered (see docs/decisions/0003-lfs.md). git-lfs asks for conflicting locks
  // before every push; "none" is the true answer, and it keeps the push free of warnings.
  router.post(`${BASE}/locks/verify`, lfsJson, route(async (req, res) => {
    await repoFor(await dbFor(req), req, 'write');
    sendLfs(res, 200, { ours: [], theirs: [] });
  }));
  router.get(`${BASE}/locks`, route(async (req, res) => {
    await repoFor(await dbFor(req), req, 'read');
    sendLfs(res, 200, { locks: [] });
  }));

  router.use(lfsErrors());
  return router;
}

function oidParam(req: Request): string {
  const oid = req.params.oid;
  if (!isOid(oid)) throw new LfsValidationError('oid must be 64 lowercase hex digits (SHA-256)');
  return oid;
}

/** The size an upload must have: the one the batch answer granted, checked against Content-Length. */
function expectedUploadSize(req: Request, granted: number | undefined, maxBytes: number): number | undefined {
  const header = req.header('content-length');
  const declared = header === undefined ? undefined : Number(header);
  if (declared !== undefined && !(Number.isSafeInteger(declared) && declared >= 0)) throw new LfsValidationError('invalid Content-Length');
  if (granted !== undefined && declared !== undefined && declared !== granted) {
    throw new LfsValidationError(`Content-Length ${declared} is not the object's size ${granted}`);
  }
  const expected = granted ?? declared;
  if (expected !== undefined && expected > maxBytes) throw new PayloadTooLargeError(`an LFS object may be at most ${maxBytes} bytes`);
  return expected;
}
