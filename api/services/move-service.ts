import { z } from 'zod';
import type { Client } from '@temporalio/client';
import { ConflictError, InputError } from '../../core/errors';
import { assertValidName } from '../../core/names';
import type { Principal } from '../../core/principal';
import { findReadableRepo } from '../../core/repos';
import { moveWorkflowId, type MoveInput } from '../../core/repo-moves';
import type { ShardRouter } from '../../core/shard-router';
import { findNode } from '../../core/storage-nodes';
import { tenantDirectory } from '../../core/tenant-directory';
import { requirePlatformAdmin, requirePrincipal } from '../authz';
import { parseBody } from '../validation';
import { audit } from './audit';
import { startOrchestrationWorkflow } from './start-workflow';

const NODE_MESSAGE = 'node must be a storage node id';
const moveBody = z.strictObject({ node: z.string({ error: NODE_MESSAGE }).min(1, { error: NODE_MESSAGE }).max(200, { error: NODE_MESSAGE }) });

/** Moving a repository to another storage node (ADR 0014; workflows/move.ts). Platform admins only. */
export class MoveService {
  constructor(
    private readonly router: ShardRouter,
    private readonly temporal: () => Promise<Client>,
    /** How long the old node keeps its copy after the switch (DOTGIT_MOVE_GRACE_SECONDS). */
    private readonly graceSeconds: number,
  ) {}

  /** Starts the move; answers its workflow id. One move per repository at a time (409 while one runs). */
  async move(principal: Principal | null | undefined, owner: string, name: string, body: unknown, requestId?: string) {
    const p = requirePrincipal(principal);
    // Deny by default: who cannot read the repository learns nothing of it (404), who can is refused (403).
    // The repository and its audit entry live in its tenant's shard, storage nodes in the global database (ADR 0025).
    const db = await tenantDirectory(this.router).dbOfOwner(assertValidName('owner', owner));
    const { repo } = await findReadableRepo(db, p, owner, assertValidName('repo', name));
    requirePlatformAdmin(p);
    const { node: to } = parseBody(moveBody, body);
    const label = `${repo.owner}/${repo.name}`;
    const target = await findNode(this.router.global, to);
    if (!target) throw new InputError(`storage node ${JSON.stringify(to.slice(0, 100))} is not registered`);
    if (!target.up) throw new InputError(`storage node ${target.id} is down; a repository moves only to a node that is up`);
    if (!repo.nodeId) throw new ConflictError(`repository ${label} is not placed on a storage node yet (it is claimed when its node starts)`);
    if (repo.nodeId === to) throw new ConflictError(`repository ${label} is already on storage node ${to}`);
    const id = moveWorkflowId(repo.owner, repo.name);
    const input: MoveInput = { tenant: repo.owner, repo: repo.name, repoId: repo.id, from: repo.nodeId, to, graceSeconds: this.graceSeconds };
    if (!(await startOrchestrationWorkflow(this.temporal, 'moveRepository', id, input, `the move of ${label}`))) {
      throw new ConflictError(`a move of ${label} is already running (${id})`);
    }
    await audit(db, { tenantId: repo.tenantId, actor: p.username, action: 'repo.move', target: label, detail: { from: input.from, to }, requestId });
    return { id, from: input.from, to };
  }
}
