/**
 * Webhook events and their GitHub-shaped payloads (`push`, `workflow_run`, `deployment_status`), so
 * receivers written for GitHub work with few changes. Pure types and functions only: workflow code
 * imports the event types from here.
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

/** Input of the `webhookDispatch` workflow: events of one repository, delivered in order. */
export interface WebhookDispatchInput {
  tenantId: number;
  repoId: number;
  events: WebhookEvent[];
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

const iso = (d: Date | string | null | undefined): string | null => (d == null ? null : new Date(d).toISOString());
const base = (publicUrl: string) => publicUrl.replace(/\/+$/, '');

export function repositoryPayload(r: RepositoryInfo, publicUrl: string) {
  const web = `${base(publicUrl)}/${r.owner}/${r.name}`;
  return {
    id: r.id,
    name: r.name,
    full_name: `${r.owner}/${r.name}`,
    private: r.private,
    visibility: r.private ? 'private' : 'public',
    owner: { login: r.owner, id: r.tenantId, type: 'Organization' },
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
  pusher: string;
}) {
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
    pusher: { name: o.pusher, email: null },
    sender: { login: o.pusher, type: 'User' },
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

export function workflowRunPayload(o: { repo: RepositoryInfo; publicUrl: string; action: string; run: RunInfo; sender: string }) {
  const repository = repositoryPayload(o.repo, o.publicUrl);
  const runUrl = `${base(o.publicUrl)}/api/v1/runs/${encodeURIComponent(o.run.id)}`;
  const state = workflowRunState(o.run.status);
  const workflow = { id: 'pipeline', name: 'pipeline', path: '.dotgit/pipeline.yml', state: 'active' };
  return {
    action: o.action,
    workflow_run: {
      id: o.run.id,
      name: workflow.name,
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
    },
    workflow,
    repository,
    sender: { login: o.sender, type: 'User' },
  };
}

export function deploymentStatusPayload(o: { repo: RepositoryInfo; publicUrl: string; event: Extract<WebhookEvent, { event: 'deployment_status' }>; now: Date }) {
  const repository = repositoryPayload(o.repo, o.publicUrl);
  const e = o.event;
  const deployUrl = `${base(o.publicUrl)}/api/v1/deploys/${encodeURIComponent(e.deployId)}`;
  const creator = { login: e.creator, type: 'User' };
  const now = o.now.toISOString();
  return {
    action: 'created',
    deployment_status: {
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
      id: e.deployId,
      sha: e.sha,
      ref: e.ref.replace(/^refs\/(heads|tags)\//, ''),
      task: 'deploy',
      environment: e.environment,
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
