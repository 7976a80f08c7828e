import type { RepoRow } from '../../core/repos';
import { ACTION_TOKEN_HEADER, signActionToken } from './action-token';
import type { BatchRequest, BatchResponseObject, LfsAction } from './batch';
import type { LfsObjects } from './objects';

export interface BatchContext {
  repo: RepoRow;
  objects: LfsObjects;
  secret: string;
  /** Base of the action hrefs: the public URL the client reaches the gateway on. */
  publicUrl: string;
  ttlSeconds: number;
}

/** The batch answer: per object, actions to run or an error (404 missing, 422 invalid or size mismatch). */
export async function answerBatch(ctx: BatchContext, request: BatchRequest): Promise<BatchResponseObject[]> {
  const valid = request.objects.filter((o) => !o.problem).map((o) => o.oid);
  const have = await ctx.objects.sizesOf(ctx.repo, [...new Set(valid)]);
  const base = `${ctx.publicUrl.replace(/\/+$/, '')}/${encodeURIComponent(ctx.repo.owner)}/${encodeURIComponent(ctx.repo.name)}.git/info/lfs/objects`;

  const action = async (op: 'download' | 'upload', oid: string, size: number, suffix = ''): Promise<LfsAction> => ({
    href: `${base}/${oid}${suffix}`,
    header: { [ACTION_TOKEN_HEADER]: await signActionToken(ctx.secret, { op, tenantId: ctx.repo.tenantId, repoId: ctx.repo.id, oid, size }, ctx.ttlSeconds) },
    expires_in: ctx.ttlSeconds,
  });

  return Promise.all(
    request.objects.map(async ({ oid, size, problem }): Promise<BatchResponseObject> => {
      if (problem) return { oid, size, error: { code: 422, message: problem } };
      const stored = have.get(oid);
      if (stored !== undefined && stored !== size) {
        return { oid, size, error: { code: 422, message: `size mismatch: the stored object ${oid} is ${stored} bytes` } };
      }
      if (request.operation === 'download') {
        if (stored === undefined) return { oid, size, error: { code: 404, message: `object ${oid} does not exist` } };
        return { oid, size, authenticated: true, actions: { download: await action('download', oid, size) } };
      }
      // Upload of an object the repository already has: no actions, the client skips it.
      if (stored !== undefined) return { oid, size };
      // The verify action carries an upload token too: only the uploader confirms its upload.
      return { oid, size, authenticated: true, actions: { upload: await action('upload', oid, size), verify: await action('upload', oid, size, '/verify') } };
    }),
  );
}
