import { z } from 'zod';
import type { Db } from '../../core/db';
import { inTransaction } from '../../core/db';
import { ConflictError, NotAllowedError, NotFoundError, UnavailableError } from '../../core/errors';
import { assertValidName } from '../../core/names';
import type { Principal } from '../../core/principal';
import { findReadableRepo, type RepoRow } from '../../core/repos';
import { requireScope } from '../authz';
import { parseBody, validName } from '../validation';
import { audit } from './audit';

const repoBody = z.strictObject({
  owner: validName('owner'),
  name: validName('name'),
  visibility: z
    .enum(['public', 'private'], { error: 'visibility must be public or private' })
    .nullish()
    .transform((v) => v ?? 'private'),
});

/** Creates the bare repository on the git-server (its internal API); the api never touches repo storage. */
export type InitBareRepo = (owner: string, name: string) => Promise<void>;

export class RepoService {
  constructor(
    private readonly db: Db,
    private readonly initBareRepo: InitBareRepo,
    private readonly publicUrl: string,
  ) {}

  view(repo: RepoRow) {
    return {
      owner: repo.owner,
      name: repo.name,
      visibility: repo.visibility,
      cloneUrl: `${this.publicUrl.replace(/\/+$/, '')}/${repo.owner}/${repo.name}.git`,
      createdAt: repo.createdAt,
    };
  }

  async create(principal: Principal, body: unknown, requestId?: string) {
    requireScope(principal, 'write');
    const { owner, name, visibility } = parseBody(repoBody, body);
    const t = await this.db.query('SELECT id FROM tenants WHERE name = $1', [owner]);
    if (t.rowCount === 0) throw new NotFoundError(`tenant ${owner} not found`);
    const tenantId = Number(t.rows[0].id);
    if (!principal.platformAdmin) {
      if (principal.tenantId !== tenantId) throw new NotFoundError(`tenant ${owner} not found`);
      if (principal.role === 'reader') throw new NotAllowedError('readers cannot create repositories');
    }
    // Row and bare repository appear together: the row commits only after the git-server made the repository.
    const row = await inTransaction(this.db, async (c) => {
      let r;
      try {
        r = await c.query('INSERT INTO repos (tenant_id, name, visibility) VALUES ($1, $2, $3) RETURNING id, created_at', [tenantId, name, visibility]);
      } catch (err) {
        if ((err as { code?: string }).code === '23505') throw new ConflictError(`repository ${owner}/${name} already exists`);
        throw err;
      }
      await audit(c, { tenantId, actor: principal.username, action: 'repo.create', target: `${owner}/${name}`, detail: { visibility }, requestId });
      await this.initBareRepo(owner, name).catch((err) => {
        if (err instanceof ConflictError) throw err;
        throw new UnavailableError(`could not create the repository on the git server: ${(err as Error).message}`);
      });
      return r.rows[0];
    });
    return this.view({ id: Number(row.id), tenantId, owner, name, visibility, createdAt: row.created_at });
  }

  async get(principal: Principal | null | undefined, owner: string, name: string) {
    const { repo } = await findReadableRepo(this.db, principal, assertValidName('owner', owner), assertValidName('repo', name));
    return this.view(repo);
  }
}
