import type { ShardRouter } from '../../core/shard-router';
import { tenantDirectory } from '../../core/tenant-directory';
import { NotFoundError } from '../../core/errors';
import { assertValidName } from '../../core/names';
import type { ObjectStore } from '../../core/object-store';
import type { Principal } from '../../core/principal';
import { findReadableRepo } from '../../core/repos';
import { deleteCache, findCache, listCaches, type CacheRow } from '../../core/stores/caches-store';
import { requireRepoWrite } from '../authz';
import { cacheIdParams, cacheListQuery } from '../schemas/pipelines';
import { parseBody } from '../validation';
import { audit } from './audit';

function cacheView(c: CacheRow) {
  return { id: Number(c.id), key: c.key, ref: c.ref, size: Number(c.size), runId: c.run_id, job: c.job, createdAt: c.created_at, lastUsedAt: c.last_used_at };
}

/** A repository's pipeline dependency caches (issue 17 item 3, ADR 0030): list and inspect (read), delete (write). */
export class CacheService {
  constructor(
    private readonly router: ShardRouter,
    private readonly store: ObjectStore,
    private readonly limitBytes: number,
  ) {}

  async list(principal: Principal | null | undefined, owner: string, name: string, query: unknown) {
    const db = await tenantDirectory(this.router).dbOfOwner(assertValidName('owner', owner));
    const { repo } = await findReadableRepo(db, principal, owner, assertValidName('repo', name));
    const q = parseBody(cacheListQuery, query);
    const { rows, totalBytes } = await listCaches(db, repo.tenantId, repo.id, q);
    return { caches: rows.map(cacheView), totalBytes, limitBytes: this.limitBytes };
  }

  async get(principal: Principal | null | undefined, owner: string, name: string, id: string) {
    const db = await tenantDirectory(this.router).dbOfOwner(assertValidName('owner', owner));
    const { repo } = await findReadableRepo(db, principal, owner, assertValidName('repo', name));
    const found = await findCache(db, repo.tenantId, repo.id, parseBody(cacheIdParams, { id }).id);
    if (!found) throw new NotFoundError(`cache ${id} not found in ${repo.owner}/${repo.name}`);
    return cacheView(found);
  }

  /** Deletes the cache's row, then its archive (a run restoring it at that moment finds the row gone, or the archive still there). */
  async remove(principal: Principal, owner: string, name: string, id: string, requestId?: string): Promise<void> {
    const db = await tenantDirectory(this.router).dbOfOwner(assertValidName('owner', owner));
    const repo = await requireRepoWrite(db, principal, owner, name, 'deleting a cache');
    const objectKey = await deleteCache(db, repo.tenantId, repo.id, parseBody(cacheIdParams, { id }).id);
    if (!objectKey) throw new NotFoundError(`cache ${id} not found in ${repo.owner}/${repo.name}`);
    await this.store.delete(objectKey).catch(() => undefined);
    await audit(db, { tenantId: repo.tenantId, actor: principal.username, action: 'cache.delete', target: `${repo.owner}/${repo.name}#${id}`, detail: {}, requestId });
  }
}
