import { fanOut, liveDatabases } from '../../core/shard-databases';
import type { ShardRouter } from '../../core/shard-router';
import { tenantDirectory } from '../../core/tenant-directory';
import { inTransaction } from '../../core/db';
import { ConflictError, NotAllowedError, NotFoundError, UnavailableError } from '../../core/errors';
import { assertValidName } from '../../core/names';
import type { Principal } from '../../core/principal';
import { findReadableRepo, type RepoRow } from '../../core/repos';
import { placeReplicas, placeRepo } from '../../core/storage-nodes';
import { findDefaultBranch } from '../../core/stores/default-branch-store';
import { findRecentRepoCreation, insertRepo, listReadableRepoRows } from '../../core/stores/repos-store';
import { findTenantByName, insertTenantCopy } from '../../core/stores/tenants-store';
import { repoAccess, type Access } from '../../core/principal';
import { nextAfter, pageOf } from '../paging';
import { requireRepoAdmin, requireScope } from '../authz';
import { createRepoBody, patchRepoBody } from '../schemas/repos';
import { parseBody } from '../validation';
import { audit } from './audit';

/**
 * Creates the bare repository on storage node `node` through a git-server's internal API (any
 * git-server: it forwards to the node); the api never touches repo storage.
 */
export type InitBareRepo = (owner: string, name: string, node: string) => Promise<void>;

/** The storage nodes this api places new repositories on: those behind its configured git-servers. */
export type PlacementNodes = () => Promise<string[]>;

/**
 * Points the repository's HEAD at an existing branch on the node holding it, through a git-server's
 * internal API (which also records it in `repos.default_branch`); NotFoundError for no such branch.
 */
export type SetDefaultBranch = (owner: string, name: string, branch: string) => Promise<void>;

/**
 * How long a creation may be sent again by its creator and still be answered 201 with the
 * repository it made (ADR 0027): its first answer may have been lost, e.g. its commit's in a
 * database failover, and the client, told 503, resends. Covers a failover (about 20 s) and a
 * client's resends after it with room to spare.
 */
export const CREATE_RESEND_SECONDS = 300;

export class RepoService {
  constructor(
    /** Repositories live in their tenant's shard database; storage nodes in the global one (ADR 0025). */
    private readonly router: ShardRouter,
    private readonly initBareRepo: InitBareRepo,
    private readonly publicUrl: string,
    private readonly placementNodes: PlacementNodes,
    /** `DOTGIT_REPLICA_NODES`: how many other nodes get a replica of each new repository. */
    private readonly replicaNodes = 0,
    private readonly setDefaultBranch?: SetDefaultBranch,
  ) {}

  view(repo: RepoRow, defaultBranch: string) {
    return {
      owner: repo.owner,
      name: repo.name,
      visibility: repo.visibility,
      defaultBranch,
      cloneUrl: `${this.publicUrl.replace(/\/+$/, '')}/${repo.owner}/${repo.name}.git`,
      createdAt: repo.createdAt,
      // Where it lives (ADR 0014), and the nodes holding its replicas (replica zones are not nodes;
      // the state of both is GET …/replicas).
      node: repo.nodeId ?? null,
      replicas: repo.replicaNodes ?? [],
    };
  }

  async create(principal: Principal, body: unknown, requestId?: string) {
    requireScope(principal, 'write');
    const { owner, name, visibility } = parseBody(createRepoBody, body);
    const tenant = await findTenantByName(this.router.global, owner);
    if (!tenant) throw new NotFoundError(`tenant ${owner} not found`);
    const tenantId = tenant.id;
    if (!principal.platformAdmin) {
      if (principal.tenantId !== tenantId) throw new NotFoundError(`tenant ${owner} not found`);
      if (principal.role === 'reader') throw new NotAllowedError('readers cannot create repositories');
    }
    // Placed on the least-used node before anything is written (ADR 0014).
    const candidates = await this.placementNodes();
    // Nodes are global; the repositories they hold are counted in every database (ADR 0025), each
    // for the shards placed on it (a moved shard's old copy is not counted again).
    const repoDbs = liveDatabases(this.router).map((d) => ({ db: d.db, shards: d.scope }));
    const nodeId = await placeRepo(this.router.global, candidates, repoDbs);
    const replicaNodes = await placeReplicas(this.router.global, candidates, nodeId, this.replicaNodes, repoDbs);
    // Row and bare repository appear together: the row commits only after the git-server made the repository.
    let nameTaken = false;
    const row = await inTransaction(this.router.forTenant(tenantId), async (c) => {
      // The tenant's reference copy (ADR 0025) is written when the tenant is created; again here in
      // case that was cut short (a no-op when present).
      await insertTenantCopy(c, tenant);
      let r;
      try {
        r = await insertRepo(c, { tenantId, name, visibility, nodeId, replicaNodes });
      } catch (err) {
        if ((err as { code?: string }).code === '23505') {
          nameTaken = true;
          throw new ConflictError(`repository ${owner}/${name} already exists`);
        }
        throw err;
      }
      await this.initBareRepo(owner, name, nodeId).catch((err) => {
        if (err instanceof ConflictError || err instanceof UnavailableError) throw err;
        throw new UnavailableError(`could not create the repository on the git server: ${(err as Error).message}`);
      });
      // Last: the audit chain's lock is then held only while the transaction commits, never across
      // the git-server call.
      await audit(c, { tenantId, actor: principal.username, action: 'repo.create', target: `${owner}/${name}`, detail: { visibility }, requestId });
      // A new repository's HEAD is main until its first push names another branch (git-server/default-branch.ts).
      return { ...r, nodeId, replicaNodes, defaultBranch: 'main' };
    }).catch(async (err: unknown) => {
      if (!nameTaken) throw err;
      return (await this.resentCreation(principal, tenantId, owner, name, visibility)) ?? Promise.reject(err);
    });
    return this.view({ id: row.id, tenantId, owner, name, visibility, createdAt: row.createdAt, nodeId: row.nodeId, replicaNodes: row.replicaNodes }, row.defaultBranch);
  }

  /**
   * The same creation sent again by the same user (ADR 0027): the repository of that name, made by
   * this user (its `repo.create` audit entry, written in the same transaction, names them) with the
   * same visibility less than CREATE_RESEND_SECONDS ago. Its first answer may have been lost after
   * the commit, so the resend gets what that answer said instead of a 409 for good. Anyone else,
   * other settings, or later: undefined (409).
   */
  private async resentCreation(principal: Principal, tenantId: number, owner: string, name: string, visibility: string) {
    const db = this.router.forTenant(tenantId);
    const made = await findRecentRepoCreation(db, { tenantId, name, target: `${owner}/${name}`, withinSeconds: CREATE_RESEND_SECONDS });
    if (!made || made.createdBy !== principal.username || made.visibility !== visibility) return undefined;
    return { id: made.id, createdAt: made.createdAt, nodeId: made.nodeId, replicaNodes: made.replicaNodes, defaultBranch: (await findDefaultBranch(db, made.id)) ?? 'main' };
  }

  async get(principal: Principal | null | undefined, owner: string, name: string) {
    const db = await tenantDirectory(this.router).dbOfOwner(assertValidName('owner', owner));
    const { repo } = await findReadableRepo(db, principal, owner, assertValidName('repo', name));
    return this.view(repo, (await findDefaultBranch(db, repo.id)) ?? 'main');
  }

  /**
   * `GET /api/v1/repos?owner=`: the repositories the caller may read, by id, a page at a time. The
   * store preselects by tenant, visibility and grants; the one access rule (`repoAccess`, with token
   * scopes) decides each. An unknown or hidden tenant lists none rather than 404: no name probing.
   */
  async list(principal: Principal | null | undefined, query: Record<string, unknown>) {
    const owner = query.owner === undefined ? undefined : assertValidName('owner', query.owner);
    const { after, limit } = pageOf(query);
    const filter = { owner, userId: principal?.userId ?? null, tenantId: principal?.tenantId ?? null, platformAdmin: principal?.platformAdmin === true, after, limit };
    // One tenant's: its shard's database. Every tenant's: each database's first page of the shards
    // placed on it (a moved shard's old copy is not listed again), merged by id (ids are unique
    // across databases, ADR 0025), the first `limit` of them.
    const rows = owner
      ? await listReadableRepoRows(await tenantDirectory(this.router).dbOfOwner(owner), filter)
      : (await fanOut(this.router, (db, d) => listReadableRepoRows(db, { ...filter, shards: d.scope }))).flat().sort((a, b) => Number(a.id) - Number(b.id)).slice(0, limit);
    const repos = rows
      .map((r) => ({
        repo: { id: Number(r.id), tenantId: Number(r.tenant_id), owner: r.owner, name: r.name, visibility: r.visibility, createdAt: r.created_at, nodeId: r.node_id ?? null, replicaNodes: r.replica_nodes ?? [] } as RepoRow,
        grant: (r.grant ?? undefined) as Access | undefined,
        defaultBranch: r.default_branch as string,
      }))
      .filter((x) => repoAccess(principal ?? undefined, x.repo, x.grant) !== 'none')
      .map((x) => this.view(x.repo, x.defaultBranch));
    return { repos, next: nextAfter(rows.map((r) => Number(r.id)), limit) };
  }

  /** `PATCH …/repos/{owner}/{repo}` (repository admins): today the default branch. */
  async update(principal: Principal, owner: string, name: string, body: unknown, requestId?: string) {
    const db = await tenantDirectory(this.router).dbOfOwner(assertValidName('owner', owner));
    const repo = await requireRepoAdmin(db, principal, owner, name, 'changing the repository');
    const { defaultBranch } = parseBody(patchRepoBody, body);
    if (defaultBranch !== undefined) {
      if (!this.setDefaultBranch) throw new UnavailableError('this api cannot reach the git servers');
      await this.setDefaultBranch(repo.owner, repo.name, defaultBranch);
      await audit(db, { tenantId: repo.tenantId, actor: principal.username, action: 'repo.default_branch', target: `${repo.owner}/${repo.name}`, detail: { defaultBranch }, requestId });
    }
    return this.view(repo, (await findDefaultBranch(db, repo.id)) ?? 'main');
  }
}
