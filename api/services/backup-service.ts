import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { Client } from '@temporalio/client';
import { InputError, NotFoundError } from '../../core/errors';
import { assertValidName } from '../../core/names';
import type { Principal } from '../../core/principal';
import type { ShardRouter } from '../../core/shard-router';
import { backupIdFor, restoreIdFor, type BackupInput, type RestoreInput } from '../../core/backup-types';
import { requirePlatformAdmin, requirePrincipal } from '../authz';
import { checked, flag, parseBody } from '../validation';
import { audit } from './audit';
import { startOrchestrationWorkflow } from './start-workflow';
import { failBackup, failRestore, findRestore, insertApiBackup, insertApiRestore, listBackups, listRestores } from '../../core/stores/backups-store';

// Clocks of the caller and ours may differ a little; a restore point further in the future is a mistake.
const FUTURE_SKEW_MS = 60_000;

const backupBody = z.strictObject({ full: flag });
const AT_MESSAGE = 'at must be an ISO 8601 time, e.g. 2024-05-01T12:00:00Z';
const REPOS_MESSAGE = 'repos must be a non-empty list of "owner/name"';
const restoreBody = z.strictObject({
  at: z
    .string({ error: AT_MESSAGE })
    .refine((s) => /^\d{4}-\d{2}-\d{2}T/.test(s) && !Number.isNaN(Date.parse(s)), { error: AT_MESSAGE })
    .transform((s) => new Date(s)),
  repos: z
    .array(
      checked((r) => {
        const parts = typeof r === 'string' ? r.split('/') : [];
        if (parts.length !== 2) throw new InputError(`repos: ${JSON.stringify(r)} is not "owner/name"`);
        return `${assertValidName('owner', parts[0])}/${assertValidName('repo', parts[1])}`;
      }),
      { error: REPOS_MESSAGE },
    )
    .min(1, { error: REPOS_MESSAGE })
    .max(10_000, { error: REPOS_MESSAGE })
    .optional(),
  postgres: z.boolean().optional(),
});

/**
 * On-demand backups, their listing, and restores (CONTRACT: platform admins only). Backup and
 * restore records are global; their audit entries go to the admin's tenant's shard (ADR 0025).
 */
export class BackupService {
  constructor(
    private readonly router: ShardRouter,
    private readonly temporal: () => Promise<Client>,
  ) {}

  private get db() {
    return this.router.global;
  }

  private async start(workflowType: 'backup' | 'restore', id: string, arg: BackupInput | RestoreInput): Promise<void> {
    // Already running under this id: that run is the answer.
    await startOrchestrationWorkflow(this.temporal, workflowType, id, arg, `the ${workflowType} workflow`);
  }

  /** Starts a backup now; `full` makes every part a new base. The row says running until the manifest is written. */
  async create(principal: Principal | null | undefined, body: unknown, requestId?: string) {
    const p = requirePrincipal(principal);
    requirePlatformAdmin(p);
    const { full } = parseBody(backupBody, body);
    const id = backupIdFor(new Date(), randomBytes(4).toString('hex'));
    await insertApiBackup(this.db, id);
    await audit(this.router.forTenant(p.tenantId), { tenantId: p.tenantId, actor: p.username, action: 'backup.create', target: id, requestId });
    try {
      await this.start('backup', id, { id, trigger: 'api', full });
    } catch (err) {
      await failBackup(this.db, id, (err as Error).message);
      throw err;
    }
    return { id, status: 'running' as const };
  }

  /** Newest first. `complete` only once the backup's manifest is written (the workflow's last step). */
  async list(principal: Principal | null | undefined) {
    requirePlatformAdmin(requirePrincipal(principal));
    const rows = await listBackups(this.db);
    return {
      backups: rows.map((row) => ({
        id: row.id as string,
        trigger: row.trigger as string,
        status: row.status as string,
        startedAt: (row.started_at as Date).toISOString(),
        finishedAt: row.finished_at ? (row.finished_at as Date).toISOString() : null,
        repos: row.repos as number | null,
        changed: row.changed as number | null,
        postgresBase: row.postgres_base as boolean | null,
        ...(row.error ? { error: row.error as string } : {}),
      })),
    };
  }

  /**
   * Restores to `at` into a fresh directory beside the live data (`.data/restores/<id>`): all
   * repositories or `repos`, and Postgres unless `postgres: false`. Switching the platform to it
   * is an offline step (`npm run restore`), see the README.
   */
  async restore(principal: Principal | null | undefined, body: unknown, requestId?: string) {
    const p = requirePrincipal(principal);
    requirePlatformAdmin(p);
    const { at, repos, postgres } = parseBody(restoreBody, body);
    if (at.getTime() > Date.now() + FUTURE_SKEW_MS) throw new InputError('at is in the future');
    const id = restoreIdFor('restore', new Date(), randomBytes(4).toString('hex'));
    await insertApiRestore(this.db, id, at);
    await audit(this.router.forTenant(p.tenantId), { tenantId: p.tenantId, actor: p.username, action: 'restore.create', target: id, detail: { at: at.toISOString(), repos }, requestId });
    try {
      await this.start('restore', id, { id, at: at.toISOString(), repos, postgres });
    } catch (err) {
      await failRestore(this.db, id, [(err as Error).message]);
      throw err;
    }
    return { id, status: 'running' as const, at: at.toISOString() };
  }

  /** Restores and the daily restore drills (`kind`), newest first, with their problems. */
  async listRestores(principal: Principal | null | undefined) {
    requirePlatformAdmin(requirePrincipal(principal));
    return { restores: (await listRestores(this.db)).map(restoreView) };
  }

  async getRestore(principal: Principal | null | undefined, id: string) {
    requirePlatformAdmin(requirePrincipal(principal));
    const row = await findRestore(this.db, id);
    if (!row) throw new NotFoundError(`restore ${id} not found`);
    return restoreView(row);
  }
}

function restoreView(row: Record<string, unknown>) {
  return {
    id: row.id as string,
    kind: row.kind as string,
    at: (row.at as Date).toISOString(),
    status: row.status as string,
    backupId: row.backup_id as string | null,
    dir: row.dir as string | null,
    problems: (row.problems as string[] | null) ?? [],
    startedAt: (row.started_at as Date).toISOString(),
    finishedAt: row.finished_at ? (row.finished_at as Date).toISOString() : null,
  };
}
