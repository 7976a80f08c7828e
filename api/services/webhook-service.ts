import { z } from 'zod';
import type { ShardRouter } from '../../core/shard-router';
import { tenantDirectory } from '../../core/tenant-directory';
import { InputError, NotFoundError } from '../../core/errors';
import type { Principal } from '../../core/principal';
import type { SecretBox } from '../../core/secret-box';
import { parseOutboundUrl, refuseLiteralPrivateIp, SsrfRefusedError } from '../../core/ssrf-guard';
import { WEBHOOK_EVENTS } from '../../core/webhook-payloads';
import { countWebhooks, deleteWebhook, findDeliveredBody, findWebhook, insertWebhook, listDeliveries, listWebhooks } from '../../core/stores/webhooks-store';
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { ConflictError, UnavailableError } from '../../core/errors';
import { startOrchestrationWorkflow } from './start-workflow';
import { requireRepoAdmin } from '../authz';
import { parseBody } from '../validation';
import { audit } from './audit';

const MAX_HOOKS_PER_REPO = 20;
const EVENT_NAMES: readonly string[] = [...WEBHOOK_EVENTS, '*'];
const EVENTS_MESSAGE = `events must be a non-empty list of ${EVENT_NAMES.join(', ')}`;
const SECRET_MESSAGE = 'secret must be a string of 1 to 256 characters';

/** `POST …/webhooks`; the URL's own checks (scheme, credentials, private addresses) follow in `create`. */
const webhookBody = z.strictObject({
  url: z.unknown(),
  secret: z.string({ error: SECRET_MESSAGE }).min(1, { error: SECRET_MESSAGE }).max(256, { error: SECRET_MESSAGE }),
  events: z
    .array(z.string({ error: EVENTS_MESSAGE }).refine((e) => EVENT_NAMES.includes(e), { error: EVENTS_MESSAGE }), { error: EVENTS_MESSAGE })
    .min(1, { error: EVENTS_MESSAGE })
    .max(EVENT_NAMES.length, { error: EVENTS_MESSAGE }),
});

function hookView(row: Record<string, unknown>) {
  return { id: Number(row.id), url: row.url, events: row.events, createdBy: row.created_by, createdAt: row.created_at };
}

function hookId(raw: string): number {
  if (!/^\d{1,15}$/.test(raw)) throw new InputError('webhook id must be a number');
  return Number(raw);
}

/**
 * Repository webhooks (CONTRACT `POST …/webhooks`), managed by repository admins. Secrets are sealed
 * at rest and never returned. Deliveries are made by the worker (`webhookDispatch`); this reads their log.
 */
export class WebhookService {
  constructor(
    /** Repository-owned rows live in their tenant's shard database (ADR 0025). */
    private readonly router: ShardRouter,
    private readonly secrets: SecretBox,
    private readonly allowHosts: readonly string[],
    /** Starts redeliveries (a `webhookDispatch` of the kept body); without it redeliver answers 503. */
    private readonly temporal?: () => Promise<Client>,
  ) {}

  private async adminRepo(principal: Principal, owner: string, name: string) {
    return requireRepoAdmin(await tenantDirectory(this.router).dbOfOwner(owner), principal, owner, name, 'managing webhooks');
  }

  async create(principal: Principal, owner: string, name: string, body: unknown, requestId?: string) {
    const repo = await this.adminRepo(principal, owner, name);
    const { url: rawUrl, secret, events } = parseBody(webhookBody, body);
    let url: URL;
    try {
      url = parseOutboundUrl(rawUrl);
      // Host names are vetted at each delivery (after resolution); a literal private IP can be refused now.
      refuseLiteralPrivateIp(url, this.allowHosts);
    } catch (err) {
      if (err instanceof SsrfRefusedError) throw new InputError(err.message);
      throw err;
    }
    const unique = [...new Set(events)];
    if ((await countWebhooks(this.router.forTenant(repo.tenantId), repo.tenantId, repo.id)) >= MAX_HOOKS_PER_REPO) throw new InputError(`a repository has at most ${MAX_HOOKS_PER_REPO} webhooks`);
    const hook = await insertWebhook(this.router.forTenant(repo.tenantId), { tenantId: repo.tenantId, repoId: repo.id, url: url.toString(), secretEnc: this.secrets.seal(secret), events: unique, createdBy: principal.username });
    // The URL may carry a token in its query: the audit entry names the host only.
    await audit(this.router.forTenant(repo.tenantId), { tenantId: repo.tenantId, actor: principal.username, action: 'repo.webhook.create', target: `${owner}/${name}`, detail: { id: Number(hook.id), host: url.host, events: unique }, requestId });
    return hookView(hook);
  }

  async list(principal: Principal, owner: string, name: string) {
    const repo = await this.adminRepo(principal, owner, name);
    return { webhooks: (await listWebhooks(this.router.forTenant(repo.tenantId), repo.tenantId, repo.id)).map(hookView) };
  }

  async get(principal: Principal, owner: string, name: string, id: string) {
    const repo = await this.adminRepo(principal, owner, name);
    const hook = await findWebhook(this.router.forTenant(repo.tenantId), repo.tenantId, repo.id, hookId(id));
    if (!hook) throw new NotFoundError(`webhook ${id} not found`);
    return hookView(hook);
  }

  async remove(principal: Principal, owner: string, name: string, id: string, requestId?: string): Promise<void> {
    const repo = await this.adminRepo(principal, owner, name);
    if (!(await deleteWebhook(this.router.forTenant(repo.tenantId), repo.tenantId, repo.id, hookId(id)))) throw new NotFoundError(`webhook ${id} not found`);
    await audit(this.router.forTenant(repo.tenantId), { tenantId: repo.tenantId, actor: principal.username, action: 'repo.webhook.delete', target: `${owner}/${name}`, detail: { id: Number(id) }, requestId });
  }

  /** Every recorded attempt of the hook's deliveries, newest first (at most `limit`, default 100). */
  async deliveries(principal: Principal, owner: string, name: string, id: string, q: { limit?: unknown }) {
    const repo = await this.adminRepo(principal, owner, name);
    const hook = await findWebhook(this.router.forTenant(repo.tenantId), repo.tenantId, repo.id, hookId(id));
    if (!hook) throw new NotFoundError(`webhook ${id} not found`);
    let limit = 100;
    if (q.limit !== undefined) {
      if (typeof q.limit !== 'string' || !/^\d{1,4}$/.test(q.limit) || Number(q.limit) < 1 || Number(q.limit) > 1000) throw new InputError('limit must be a number from 1 to 1000');
      limit = Number(q.limit);
    }
    const rows = await listDeliveries(this.router.forTenant(repo.tenantId), repo.tenantId, Number(hook.id), limit);
    return {
      deliveries: rows.map((row) => ({
        deliveryId: row.delivery_id,
        event: row.event,
        action: row.action,
        attempt: row.attempt,
        outcome: row.outcome,
        responseStatus: row.response_status,
        error: row.error,
        durationMs: row.duration_ms,
        startedAt: row.started_at,
        finishedAt: row.finished_at,
      })),
    };
  }

  /**
   * `POST …/webhooks/{id}/deliveries/{delivery}/redeliver` (issue 18, like GitHub's): the body that
   * delivery sent, sent again to the hook by the worker (a `webhookDispatch`, so it is signed, vetted
   * against private addresses, retried and logged like any delivery) under a new delivery id. 202
   * with the dispatch's workflow id; 404 for a delivery the hook never made; 409 when its body was
   * not kept (deliveries from before redelivery, or over 1 MiB).
   */
  async redeliver(principal: Principal, owner: string, name: string, id: string, deliveryId: string, requestId?: string) {
    const repo = await this.adminRepo(principal, owner, name);
    const db = this.router.forTenant(repo.tenantId);
    const hook = await findWebhook(db, repo.tenantId, repo.id, hookId(id));
    if (!hook) throw new NotFoundError(`webhook ${id} not found`);
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(deliveryId)) throw new InputError('delivery must be a delivery id (a UUID)');
    const sent = await findDeliveredBody(db, repo.tenantId, Number(hook.id), deliveryId);
    if (!sent) throw new NotFoundError(`delivery ${deliveryId} of webhook ${id} not found`);
    if (sent.body === null) throw new ConflictError(`the body of delivery ${deliveryId} was not kept, so it cannot be sent again`);
    if (!this.temporal) throw new UnavailableError('this api cannot start deliveries');
    const workflowId = `webhook:redeliver:${repo.owner}:${repo.name}:${Number(hook.id)}:${deliveryId}:${randomUUID()}`;
    await startOrchestrationWorkflow(this.temporal, 'webhookDispatch', workflowId, { tenantId: repo.tenantId, repoId: repo.id, events: [{ event: 'redelivery', hookId: Number(hook.id), deliveryId }] }, 'the redelivery');
    await audit(db, { tenantId: repo.tenantId, actor: principal.username, action: 'repo.webhook.redeliver', target: `${owner}/${name}`, detail: { id: Number(hook.id), deliveryId, workflowId }, requestId });
    return { id: workflowId, redeliveryOf: deliveryId, status: 'queued' as const };
  }
}
