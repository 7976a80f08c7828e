import type { Readable } from 'node:stream';
import type { Db } from '../../core/db';
import type { ObjectStore } from '../../core/object-store';
import type { RepoRow } from '../../core/repos';
import { lfsObjectKey } from './batch';
import { findLfsObjectSize, insertLfsObject, listLfsObjects } from '../../core/stores/lfs-store';

/** LFS objects of one repository: rows in `lfs_objects` (oid → size) and bytes in the object store. */
export class LfsObjects {
  constructor(
    /** The database of a tenant's shard, where its repositories' rows are (ADR 0025). */
    private readonly dbOf: (tenantId: number) => Db,
    private readonly store: ObjectStore,
  ) {}

  /** Size of the object when this repository has it (row and bytes both present), else undefined. */
  async sizeOf(repo: RepoRow, oid: string): Promise<number | undefined> {
    const size = await findLfsObjectSize(this.dbOf(repo.tenantId), repo.tenantId, repo.id, oid);
    if (size === undefined) return undefined;
    // The row is written after the bytes; a store that lost them must not make us promise a download.
    if (!(await this.store.exists(lfsObjectKey(repo.owner, repo.name, oid)))) return undefined;
    return size;
  }

  /** Sizes of those of `oids` this repository has, in one query (a batch names up to 1000). */
  async sizesOf(repo: RepoRow, oids: string[]): Promise<Map<string, number>> {
    const found = new Map<string, number>();
    if (oids.length === 0) return found;
    const rows = await listLfsObjects(this.dbOf(repo.tenantId), repo.tenantId, repo.id, oids);
    await Promise.all(
      rows.map(async (row) => {
        if (await this.store.exists(lfsObjectKey(repo.owner, repo.name, row.oid))) found.set(row.oid, Number(row.size));
      }),
    );
    return found;
  }

  /**
   * Stores `body` (which must fail rather than end when its content is wrong: see VerifyingStream)
   * and records it. The row comes last, so a crash in between leaves unreferenced bytes that a
   * later upload overwrites, never a row without bytes.
   */
  async put(repo: RepoRow, oid: string, body: Readable): Promise<number> {
    const { size } = await this.store.put(lfsObjectKey(repo.owner, repo.name, oid), body);
    await insertLfsObject(this.dbOf(repo.tenantId), repo.tenantId, repo.id, oid, size);
    return size;
  }

  get(repo: RepoRow, oid: string): Promise<Readable> {
    return this.store.get(lfsObjectKey(repo.owner, repo.name, oid));
  }
}
