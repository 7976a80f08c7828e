import type { Client } from '@temporalio/client';
import { ConflictError, InputError } from '../../core/errors';
import type { Principal } from '../../core/principal';
import type { ShardRouter } from '../../core/shard-router';
import { shardMoveWorkflowId, type ShardMoveInput } from '../../core/shard-moves';
import { requirePlatformAdmin, requirePrincipal } from '../authz';
import { shardMoveBody, type ShardMoveAnswer } from '../schemas/shards';
import { parseBody } from '../validation';
import { appendAuditRouted } from '../../core/shard-audit';
import { startOrchestrationWorkflow } from './start-workflow';

/** Moving a logical shard to another database of the shard map (ADR 0026; workflows/shard-move.ts). Platform admins only. */
export class ShardMoveService {
  constructor(
    private readonly router: ShardRouter,
    private readonly temporal: () => Promise<Client>,
    /** DOTGIT_SHARD_MOVE_GRACE_SECONDS and DOTGIT_SHARD_MOVE_BATCH_ROWS. */
    private readonly o: { graceSeconds: number; batchRows: number },
  ) {}

  /** Starts the move; answers its workflow id. One move per shard at a time (409 while one runs). */
  async move(principal: Principal | null | undefined, shardParam: string, body: unknown, requestId?: string): Promise<ShardMoveAnswer> {
    const p = requirePrincipal(principal);
    requirePlatformAdmin(p);
    const shard = Number(shardParam);
    if (!/^[0-7]$/.test(shardParam)) throw new InputError('shard must be a logical shard number, 0 to 7');
    const { toDatabase: to } = parseBody(shardMoveBody, body);
    // The placement as the global database has it now, not as this process last read it.
    await this.router.refresh();
    const databases = this.router.databases();
    if (!databases.some((d) => d.name === to)) {
      throw new InputError(`database "${to}" is not in the shard map (DOTGIT_SHARD_MAP defines ${databases.map((d) => `"${d.name}"`).join(', ')})`);
    }
    const from = databases.find((d) => d.shards.includes(shard))!.name;
    if (from === to) throw new ConflictError(`shard ${shard} is already on database "${to}"`);
    const id = shardMoveWorkflowId(shard);
    const input: ShardMoveInput = { shard, from, to, graceSeconds: this.o.graceSeconds, batchRows: this.o.batchRows };
    if (!(await startOrchestrationWorkflow(this.temporal, 'shardMove', id, input, `the move of shard ${shard}`))) {
      throw new ConflictError(`a move of shard ${shard} is already running (${id})`);
    }
    // Platform-level (no tenant): shard 0's chain, on the database holding shard 0 now (ADR 0025).
    await appendAuditRouted(this.router, { tenantId: null, actor: p.username, action: 'shard.move', target: `shard ${shard}`, detail: { from, to, workflowId: id }, requestId });
    return { id, shard, from, to };
  }
}
