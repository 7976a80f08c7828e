import { createHash } from 'node:crypto';

/**
 * Webhook events and their GitHub-shaped payloads (`push`, `workflow_run`, `deployment_status`), so
 * receivers written for GitHub work with few changes: GitHub's field names and types where
 * consumers read them (numeric `id`s, with our own string ids as `node_id`, GitHub's opaque string
 * id), compared with recorded GitHub examples in test/unit/webhook-shape.test.ts. Pure types and
 * functions only: workflow code imports the event types from here.
 */

export const WEBHOOK_EVENTS = ['push', 'workflow_run', 'deployment_status'] as const;
export type WebhookEventName = (typeof WEBHOOK_EVENTS)[number];

/** GitHub's deployment states. */
export type DeploymentState = 'queued' | 'pending' | 'waiting' | 'in_progress' | 'success' | 'failure' | 'error' | 'inactive';

/** What happened, as the dispatch workflow carries it; the payload is built from it (and the database) by an activity. */
export type WebhookEvent =
  | { event: 'push'; ref: string; before: string; after: string; pusher: string }
  | { event: 'workflow_run'; action: 'requested' | 'in_progress' | 'completed'; runId: string }
  | {
      event: 'deployment_status';
      deployId: string;
      environment: string;
      ref: string;
      sha: string;
      state: DeploymentState;
      /** Who asked for the deploy (or decided the approval that caused this status). */
      creator: string;
      description?: string;
      /** When the deploy was requested (ISO 8601); default: now. */
      createdAt?: string;
    };

/**
 * A recorded delivery sent again to its hook (issue 18, `POST …/deliveries/{id}/redeliver`): the
 * body it sent, byte for byte, under a new delivery id; nothing when the hook is gone since.
 */
export interface WebhookRedelivery {
  event: 'redelivery';
  hookId: number;
  deliveryId: string;
}

/** Input of the `webhookDispatch` workflow: events of one repository, delivered in order. */
export interface WebhookDispatchInput {
  tenantId: number;
  repoId: number;
  events: Array<WebhookEvent | WebhookRedelivery>;
  /**
   * The storage node holding the repository (a push's dispatch): payloads that read the repository
   * (commits, default branch) are planned beside it, on `storageQueue(node)` (ADR 0014).
   */
  node?: string;
}

/** Workflow id of the dispatch of one push's events (deterministic: a retried start is a no-op). */
export function pushDispatchWorkflowId(tenant: string, repo: string, pushId: string): string {
  return `webhook:push:${tenant}:${repo}:${pushId}`;
}

export interface RepositoryInfo {
  id: number;
  tenantId: number;
  owner: string;
  name: string;
  private: boolean;
  defaultBranch: string;
  createdAt: Date | string;
}

/**
 * A stable numeric id for one of our string ids (runs, deploys: `pipeline:acme:web:…`), where
 * GitHub has numbers: the first 48 bits of its SHA-256, a safe integer in every JSON reader.
 */
export function numericId(kind: string, id: string): number {
  return parseInt(createHash('sha256').update(`${kind}\0${id}`).digest('hex').slice(0, 12), 16);
}

/** Who did it: a user name, with the user's numeric id and email when known. */
export interface Actor {
  login: string;
  id?: number | null;
  email?: string | null;
}

const actor = (a: Actor | string): Actor => (typeof a === 'string' ? { login: a } : a);

/** GitHub's user object (`sender`, `creator`): an unknown user's id is derived from the name. */
function userPayload(who: Actor | string) {
  const a = actor(who);
  return { login: a.login, id: a.id ?? numericId('user', a.login), type: 'User' };
}

const iso = (d: Date | string | null | undefined): string | null => (d == null ? null : new Date(d).toISOString());
const base = (publicUrl: string) => publicUrl.replace(/\/+$/, '');

export function repositoryPayload(r: RepositoryInfo, publicUrl: string) {
  const web = `${base(publicUrl)}/${r.owner}/${r.name}`;
  return {
    id: r.id,
    node_id: `${r.owner}/${r.name}`,
    name: r.name,
    full_name: `${r.owner}/${r.name}`,
    private: r.private,
    visibility: r.private ? 'private' : 'public',
    owner: { login: r.owner, id: r.tenantId, type: 'Organization', html_url: `${base(publicUrl)}/${r.owner}` },
    description: null,
    fork: false,
    html_url: web,
    url: `${base(publicUrl)}/api/v1/repos/${r.owner}/${r.name}`,
    clone_url: `${web}.git`,
    default_branch: r.defaultBranch,
    created_at: iso(r.createdAt),
  };
}

export interface CommitInfo {
  id: string;
  treeId: string;
  message: string;
  timestamp: string;
  author: { name: string; email: string };
  committer: { name: string; email: string };
  added: string[];
  removed: string[];
  modified: string[];
}

function commitPayload(c: CommitInfo, repoApiUrl: string) {
  return {
    id: c.id,
    tree_id: c.treeId,
    distinct: true,
    message: c.message,
    timestamp: c.timestamp,
    url: `${repoApiUrl}/commits/${c.id}/status`,
    author: c.author,
    committer: c.committer,
    added: c.added,
    removed: c.removed,
    modified: c.modified,
  };
}

const ZERO = /^0+$/;

export function pushPayload(o: {
  repo: RepositoryInfo;
  publicUrl: string;
  ref: string;
  before: string;
  after: string;
  forced: boolean;
  commits: CommitInfo[];
  headCommit: CommitInfo | null;
  /** The pusher, with the email when known. */
  pusher: Actor | string;
}) {
  const pusher = actor(o.pusher);
  const repository = repositoryPayload(o.repo, o.publicUrl);
  return {
    ref: o.ref,
    before: o.before,
    after: o.after,
    created: ZERO.test(o.before),
    deleted: ZERO.test(o.after),
    forced: o.forced,
    base_ref: null,
    compare: `${repository.html_url}/compare/${o.before.slice(0, 12)}...${o.after.slice(0, 12)}`,
    commits: o.commits.map((c) => commitPayload(c, repository.url)),
    head_commit: o.headCommit ? commitPayload(o.headCommit, repository.url) : null,
    repository,
    pusher: { name: pusher.login, email: pusher.email ?? null },
    sender: userPayload(pusher),
  };
}

export interface RunInfo {
  id: string;
  ref: string;
  commit: string;
  status: 'queued' | 'running' | 'success' | 'failure' | 'cancelled';
  createdAt: Date | string;
  startedAt: Date | string | null;
  finishedAt: Date | string | null;
}

/** GitHub's status/conclusion pair for one of our run statuses. */
export function workflowRunState(status: RunInfo['status']): { status: 'queued' | 'in_progress' | 'completed'; conclusion: 'success' | 'failure' | 'cancelled' | null } {
  if (status === 'queued') return { status: 'queued', conclusion: null };
  if (status === 'running') return { status: 'in_progress', conclusion: null };
  return { status: 'completed', conclusion: status };
}

export function workflowRunPayload(o: { repo: RepositoryInfo; publicUrl: string; action: string; run: RunInfo; sender: Actor | string }) {
  const repository = repositoryPayload(o.repo, o.publicUrl);
  const runUrl = `${base(o.publicUrl)}/api/v1/runs/${encodeURIComponent(o.run.id)}`;
  const state = workflowRunState(o.run.status);
  const path = '.dotgit/pipeline.yml';
  const workflow = { id: numericId('workflow', `${repository.full_name}:${path}`), node_id: 'pipeline', name: 'pipeline', path, state: 'active', html_url: `${repository.html_url}/blob/${repository.default_branch}/${path}` };
  return {
    action: o.action,
    workflow_run: {
      id: numericId('run', o.run.id),
      node_id: o.run.id,
      name: workflow.name,
      workflow_id: workflow.id,
      path: workflow.path,
      head_branch: o.run.ref.replace(/^refs\/(heads|tags)\//, ''),
      head_sha: o.run.commit,
      event: 'push',
      status: state.status,
      conclusion: state.conclusion,
      run_attempt: 1,
      created_at: iso(o.run.createdAt),
      updated_at: iso(o.run.finishedAt ?? o.run.startedAt ?? o.run.createdAt),
      run_started_at: iso(o.run.startedAt),
      url: runUrl,
      html_url: runUrl,
      logs_url: `${runUrl}/logs`,
      artifacts_url: `${runUrl}/artifacts`,
      cancel_url: `${runUrl}/cancel`,
      repository,
      head_repository: repository,
    },
    workflow,
    repository,
    sender: userPayload(o.sender),
  };
}

export function deploymentStatusPayload(o: { repo: RepositoryInfo; publicUrl: string; event: Extract<WebhookEvent, { event: 'deployment_status' }>; now: Date; creator?: Actor }) {
  const repository = repositoryPayload(o.repo, o.publicUrl);
  const e = o.event;
  const deployUrl = `${base(o.publicUrl)}/api/v1/deploys/${encodeURIComponent(e.deployId)}`;
  const creator = userPayload(o.creator ?? e.creator);
  const now = o.now.toISOString();
  return {
    action: 'created',
    deployment_status: {
      // One status of a deploy per state it reaches: the id is the deploy's and the state's.
      id: numericId('deployment_status', `${e.deployId}:${e.state}`),
      node_id: `${e.deployId}:${e.state}`,
      state: e.state,
      description: e.description ?? '',
      environment: e.environment,
      target_url: deployUrl,
      log_url: deployUrl,
      creator,
      created_at: now,
      updated_at: now,
      deployment_url: deployUrl,
      repository_url: repository.url,
    },
    deployment: {
      id: numericId('deploy', e.deployId),
      node_id: e.deployId,
      sha: e.sha,
      ref: e.ref.replace(/^refs\/(heads|tags)\//, ''),
      task: 'deploy',
      payload: {},
      original_environment: e.environment,
      environment: e.environment,
      description: e.description ?? null,
      creator,
      created_at: e.createdAt ?? now,
      updated_at: now,
      url: deployUrl,
      statuses_url: deployUrl,
      repository_url: repository.url,
    },
    repository,
    sender: creator,
  };
}
