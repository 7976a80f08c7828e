import { createHmac } from 'node:crypto';
import { ApplicationFailure, Context } from '@temporalio/activity';
import client from 'prom-client';
import { currentTraceparent } from '../core/tracing';
import type { Db } from '../core/db';
import type { ShardRouter } from '../core/shard-router';
import { repoPath, runGit } from '../core/git';
import { findUserByName } from '../core/stores/tenants-store';
import { findRunPusher } from '../core/stores/audit-store';
import { findRepoRowById } from '../core/stores/repos-store';
import { findDefaultBranch } from '../core/stores/default-branch-store';
import { findRunSummary } from '../core/stores/runs-store';
import { findDeliveredBody, findWebhookTarget, hasWebhookFor as webhookSubscribed, recordDelivery, webhookIdsFor } from '../core/stores/webhooks-store';
import type { SecretBox } from '../core/secret-box';
import { parseOutboundUrl, requestVetted, SsrfRefusedError, vetTarget, type Resolver } from '../core/ssrf-guard';
import {
  deploymentStatusPayload,
  pushPayload,
  workflowRunPayload,
  type Actor,
  type CommitInfo,
  type RepositoryInfo,
  type WebhookEvent,
  type WebhookEventName,
  type WebhookRedelivery,
} from '../core/webhook-payloads';

const deliveries = new client.Counter({
  name: 'dotgit_webhook_deliveries_total',
  help: 'Webhook delivery attempts, by event and outcome (success, failure: retried unless 3xx/4xx, refused by the SSRF guard)',
  labelNames: ['event', 'outcome'],
});

function traceHeader(): Record<string, string> {
  const traceparent = currentTraceparent();
  return traceparent ? { traceparent } : {};
}

export interface WebhookDeps {
  /** The global database (users); every database when there is no router (tests of their own database). */
  db: Db;
  /** Routes a repository's hooks, runs and deliveries to its tenant's shard database (ADR 0025). */
  router?: ShardRouter;
  reposDir: string;
  publicUrl: string;
  /** Opens webhook secrets (purpose 'webhook-secret', master = the internal secret). */
  secrets: SecretBox;
  allowHosts: readonly string[];
  timeoutMs: number;
  resolve?: Resolver;
}

/** One event ready to deliver: the exact body every hook gets (so every retry signs the same bytes). */
export interface PlannedWebhookEvent {
  event: WebhookEventName;
  action: string | null;
  body: string;
  hookIds: number[];
}

export interface DeliveryArgs {
  tenantId: number;
  hookId: number;
  deliveryId: string;
  event: WebhookEventName;
  action: string | null;
  body: string;
}

/** Error types the dispatch workflow does not retry: a refused address, a receiver's 4xx, a hook that cannot sign. */
export const NON_RETRYABLE_WEBHOOK_ERRORS = ['WebhookRefused', 'WebhookRejected', 'WebhookMisconfigured'];

export const USER_AGENT = 'dotgit-Hookshot';
const MAX_COMMITS = 20;
/** Bodies up to this many characters are kept with their delivery for a redelivery (issue 18); larger ones are not. */
const MAX_KEPT_BODY = 1024 * 1024;
const ZERO = /^0+$/;
const SHA = /^[0-9a-f]{40}$|^[0-9a-f]{64}$/;

export function signBody(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** Whether the repository has any webhook subscribed to the event (or to every event, `*`). */
export async function hasWebhookFor(db: Db, tenantId: number, repoId: number, event: WebhookEventName): Promise<boolean> {
  return webhookSubscribed(db, tenantId, repoId, event);
}

/** Webhook activities (orchestration queue): plan an event's payload and hooks, deliver it to one hook. */
export function createWebhookActivities(deps: WebhookDeps) {
  const { db } = deps;
  // A repository's hooks, runs and deliveries live in its tenant's shard (ADR 0025).
  const dbOf = (tenantId: number) => deps.router?.forTenant(tenantId) ?? db;

  async function repository(tenantId: number, repoId: number): Promise<RepositoryInfo | undefined> {
    const row = await findRepoRowById(dbOf(tenantId), tenantId, repoId);
    if (!row) return undefined;
    const head = await runGit(['--git-dir', repoPath(deps.reposDir, row.owner, row.name), 'symbolic-ref', '--short', 'HEAD']);
    return {
      id: Number(row.id),
      tenantId: Number(row.tenant_id),
      owner: row.owner,
      name: row.name,
      private: row.visibility !== 'public',
      // HEAD where this worker can read it; else (the repository on another node) the copy recorded beside its row.
      defaultBranch: head.code === 0 ? head.stdout.toString().trim() : ((await findDefaultBranch(dbOf(tenantId), repoId)) ?? 'main'),
      createdAt: row.created_at,
    };
  }

  /**
   * A user as payloads name them: the numeric user id (usernames are global), and an email when one
   * is known: accounts carry none, so the pushed head commit's committer (else author) email when that
   * identity is the user's own (its name or the email's local part is the user name).
   */
  async function actorOf(login: string, commit?: CommitInfo | null): Promise<Actor> {
    const user = await findUserByName(db, login);
    const own = [commit?.committer, commit?.author].find((p) => p && (p.name === login || p.email.split('@')[0] === login));
    return { login, id: user ? Number(user.id) : null, email: own?.email ?? null };
  }

  async function commits(gitDir: string, args: string[]): Promise<CommitInfo[]> {
    const r = await runGit(['--git-dir', gitDir, 'log', '--no-renames', '--name-status', '--format=%x1e%H%x00%T%x00%an%x00%ae%x00%cn%x00%ce%x00%cI%x00%B%x00', ...args]);
    if (r.code !== 0) return [];
    return r.stdout
      .toString('utf8')
      .split('\x1e')
      .filter((rec) => rec.includes('\x00'))
      .map((rec) => {
        const [id, treeId, an, ae, cn, ce, date, message, files = ''] = rec.split('\x00');
        const c: CommitInfo = { id, treeId, message: message.trimEnd(), timestamp: date, author: { name: an, email: ae }, committer: { name: cn, email: ce }, added: [], removed: [], modified: [] };
        for (const line of files.split('\n')) {
          const [kind, file] = line.split('\t');
          if (!file) continue;
          if (kind === 'A') c.added.push(file);
          else if (kind === 'D') c.removed.push(file);
          else c.modified.push(file);
        }
        return c;
      });
  }

  async function pushBody(repo: RepositoryInfo, e: Extract<WebhookEvent, { event: 'push' }>) {
    // Checked again here because they become git arguments.
    if (!SHA.test(e.before) || !SHA.test(e.after) || !/^refs\/(heads|tags)\/[^-]/.test(e.ref)) return undefined;
    const gitDir = repoPath(deps.reposDir, repo.owner, repo.name);
    const deleted = ZERO.test(e.after);
    const created = ZERO.test(e.before);
    let list: CommitInfo[] = [];
    let head: CommitInfo | null = null;
    let forced = false;
    if (!deleted) {
      [head = null] = await commits(gitDir, ['-1', `${e.after}^{commit}`]);
      if (!e.ref.startsWith('refs/tags/')) {
        // The newest 20 commits the push added, oldest first, as GitHub lists them.
        const range = created ? [e.after, '--not', `--exclude=${e.ref.slice('refs/heads/'.length)}`, '--branches'] : [`${e.before}..${e.after}`];
        list = await commits(gitDir, ['--reverse', `-${MAX_COMMITS}`, ...range]);
      }
      if (!created) forced = (await runGit(['--git-dir', gitDir, 'merge-base', '--is-ancestor', e.before, e.after])).code === 1;
    }
    return pushPayload({ repo, publicUrl: deps.publicUrl, ref: e.ref, before: e.before, after: e.after, forced, commits: list, headCommit: head, pusher: await actorOf(e.pusher, head) });
  }

  async function workflowRunBody(repo: RepositoryInfo, e: Extract<WebhookEvent, { event: 'workflow_run' }>) {
    const row = await findRunSummary(dbOf(repo.tenantId), repo.tenantId, e.runId);
    if (!row) return undefined;
    // The pusher, from the push's audit entry (runs do not carry it).
    const pusher = await findRunPusher(dbOf(repo.tenantId), repo.tenantId, e.runId, row.created_at);
    return workflowRunPayload({
      repo,
      publicUrl: deps.publicUrl,
      action: e.action,
      sender: await actorOf(pusher ?? repo.owner),
      run: { id: row.id, ref: row.ref, commit: row.commit_sha, status: row.status, createdAt: row.created_at, startedAt: row.started_at, finishedAt: row.finished_at },
    });
  }

  /** A redelivery (issue 18): the kept body of the delivery, to its hook only; null when the hook or the body is gone. */
  async function redelivery(tenantId: number, e: WebhookRedelivery): Promise<PlannedWebhookEvent | null> {
    if (!(await findWebhookTarget(dbOf(tenantId), tenantId, e.hookId))) return null;
    const sent = await findDeliveredBody(dbOf(tenantId), tenantId, e.hookId, e.deliveryId);
    if (!sent?.body) return null;
    return { event: sent.event as WebhookEventName, action: sent.action, body: sent.body, hookIds: [e.hookId] };
  }

  return {
    /**
     * The hooks of the repository subscribed to the event and the payload they get; null when no
     * hook wants it (then nothing is built). The body is made once so every attempt signs the same bytes.
     */
    async planWebhookEvent(args: { tenantId: number; repoId: number; event: WebhookEvent | WebhookRedelivery }): Promise<PlannedWebhookEvent | null> {
      if (args.event.event === 'redelivery') return redelivery(args.tenantId, args.event);
      const name = args.event.event;
      const hookIds = await webhookIdsFor(dbOf(args.tenantId), args.tenantId, args.repoId, name);
      if (hookIds.length === 0) return null;
      const repo = await repository(args.tenantId, args.repoId);
      if (!repo) return null;
      const e = args.event;
      let payload: object | undefined;
      if (e.event === 'push') payload = await pushBody(repo, e);
      else if (e.event === 'workflow_run') payload = await workflowRunBody(repo, e);
      else payload = deploymentStatusPayload({ repo, publicUrl: deps.publicUrl, event: e, now: new Date(), creator: await actorOf(e.creator) });
      if (!payload) return null;
      return { event: name, action: 'action' in payload ? String(payload.action) : null, body: JSON.stringify(payload), hookIds };
    },

    /**
     * One attempt to deliver one event to one hook, recorded whatever happens. 2xx is success; a
     * refused address, a 3xx/4xx (except 408/429) or an unusable hook fail for good; anything else
     * throws so Temporal retries it with backoff, under the same delivery id.
     */
    async deliverWebhook(args: DeliveryArgs): Promise<{ status: number | null; outcome: 'success' | 'gone' }> {
      const hook = await findWebhookTarget(dbOf(args.tenantId), args.tenantId, args.hookId);
      if (!hook) return { status: null, outcome: 'gone' }; // deleted since the event was planned
      const attempt = Context.current().info.attempt;
      const startedAt = new Date();
      const t0 = performance.now();
      let status: number | null = null;
      let error: string | null = null;
      let failure: ApplicationFailure | undefined;
      try {
        let secret: string;
        try {
          secret = deps.secrets.open(hook.secret_enc);
        } catch {
          throw ApplicationFailure.nonRetryable('the webhook secret cannot be decrypted (was the internal secret changed?)', 'WebhookMisconfigured');
        }
        const target = await vetTarget(parseOutboundUrl(hook.url), { allowHosts: deps.allowHosts, resolve: deps.resolve });
        const res = await requestVetted(target, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'content-length': String(Buffer.byteLength(args.body)),
            'user-agent': USER_AGENT,
            'x-github-event': args.event,
            'x-github-delivery': args.deliveryId,
            'x-github-hook-id': String(args.hookId),
            'x-hub-signature-256': signBody(secret, args.body),
            // The receiver may continue the trace (the delivery activity's span) when tracing is on.
            ...traceHeader(),
          },
          body: args.body,
          timeoutMs: deps.timeoutMs,
        });
        status = res.status;
        if (status < 200 || status >= 300) {
          error = `the receiver answered ${status}${res.body ? `: ${res.body.slice(0, 200)}` : ''}`;
          const retryable = status >= 500 || status === 408 || status === 429;
          failure = retryable ? ApplicationFailure.retryable(error, 'WebhookDeliveryFailed') : ApplicationFailure.nonRetryable(error, 'WebhookRejected');
        }
      } catch (err) {
        error = (err as Error).message;
        if (err instanceof SsrfRefusedError) failure = ApplicationFailure.nonRetryable(error, 'WebhookRefused');
        else if (err instanceof ApplicationFailure) failure = err;
        else failure = ApplicationFailure.retryable(error, 'WebhookDeliveryFailed');
      }
      const outcome = !failure ? 'success' : failure.type === 'WebhookRefused' ? 'refused' : 'failure';
      deliveries.inc({ event: args.event, outcome });
      await recordDelivery(dbOf(args.tenantId), {
        tenantId: args.tenantId,
        webhookId: args.hookId,
        deliveryId: args.deliveryId,
        event: args.event,
        action: args.action,
        attempt,
        outcome,
        responseStatus: status,
        error: error?.slice(0, 1000) ?? null,
        durationMs: Math.round(performance.now() - t0),
        startedAt,
        body: args.body.length <= MAX_KEPT_BODY ? args.body : null,
      });
      if (failure) throw failure;
      return { status, outcome: 'success' };
    },
  };
}

export type WebhookActivities = ReturnType<typeof createWebhookActivities>;
