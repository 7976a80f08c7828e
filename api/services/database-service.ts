import type { Client } from '@temporalio/client';
import { SWITCHOVER_WORKFLOW_ID } from '../../core/db-switchover';
import { ConflictError } from '../../core/errors';
import type { Principal } from '../../core/principal';
import { appendAuditRouted } from '../../core/shard-audit';
import type { ShardRouter } from '../../core/shard-router';
import { switchoverBody } from '../schemas/admin';
import { requirePlatformAdmin, requirePrincipal } from '../authz';
import { parseBody } from '../validation';
import { startOrchestrationWorkflow } from './start-workflow';

/**
 * Operations on the metadata database itself (platform admins): the planned switchover (ADR 0027).
 * Its audit entry is platform-level (no tenant): it goes to shard 0's chain, on whichever database
 * holds shard 0 now (ADR 0025), like every entry without a tenant.
 */
export class DatabaseService {
  constructor(
    private readonly router: ShardRouter,
    private readonly temporal: () => Promise<Client>,
    /** Patroni's REST APIs (DOTGIT_PATRONI_URLS): without them there is nothing to switch over. */
    private readonly patroniUrls: string[],
  ) {}

  /** Starts the `dbSwitchover` workflow (one at a time: 409 while one runs). */
  async switchover(principal: Principal | null | undefined, body: unknown, requestId?: string) {
    const p = requirePrincipal(principal);
    requirePlatformAdmin(p);
    const { candidate } = parseBody(switchoverBody, body);
    if (!this.patroniUrls.length) throw new ConflictError('the database is not run by Patroni here (DOTGIT_PATRONI_URLS is unset): switch over with your provider');
    const started = await startOrchestrationWorkflow(this.temporal, 'dbSwitchover', SWITCHOVER_WORKFLOW_ID, { candidate, requestedBy: p.username }, 'the switchover workflow');
    if (!started) throw new ConflictError(`a switchover is already running (workflow ${SWITCHOVER_WORKFLOW_ID})`);
    await appendAuditRouted(this.router, { tenantId: null, actor: p.username, action: 'database.switchover', target: candidate ?? 'sync standby', requestId });
    return { id: SWITCHOVER_WORKFLOW_ID, status: 'started' as const };
  }
}
