import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * What a log line knows about the work it is written for (issue 14 item 5, ADR 0028): the request
 * or activity sets it once, and every line written while handling it — through the process logger
 * or a child, in a service, a store or a library callback — carries its fields (core/logger.ts
 * mixin). `repo` is `owner/name`. A request learns its repository late (a run read by id), so the
 * object is shared by the whole request and `noteLogRepo` fills it in where the repository is found.
 */
export interface LogFields {
  tenant?: string;
  repo?: string;
  runId?: string;
  requestId?: string;
  /** The trace the work belongs to, where no active span says it (tracing off; a hook's call: its token's). */
  traceId?: string;
}

/** The fields, and where a request's route parameters name the repository (`:owner` with `:repo` or `:name`). */
interface LogContext {
  fields: LogFields;
  params?: () => Record<string, unknown> | undefined;
}

const storage = new AsyncLocalStorage<LogContext>();

/** Runs `fn` with `fields` on every line it logs; `params` (a request's) is read when a line is written. */
export function withLogContext<T>(fields: LogFields, fn: () => T, params?: () => Record<string, unknown> | undefined): T {
  return storage.run({ fields, params }, fn);
}

/** The repository the current request or activity turned out to be about (e.g. a run read by id). */
export function noteLogRepo(repo: string): void {
  const ctx = storage.getStore();
  if (ctx) ctx.fields.repo = repo;
}

/** The fields of the current context for a log line (none outside one). */
export function logContextFields(): LogFields | undefined {
  const ctx = storage.getStore();
  if (!ctx) return undefined;
  if (ctx.fields.repo === undefined && ctx.params) {
    const p = ctx.params();
    const owner = p?.owner;
    const name = p?.repo ?? p?.name;
    if (typeof owner === 'string' && typeof name === 'string' && owner && name) return { ...ctx.fields, repo: `${owner}/${name.replace(/\.git$/, '')}` };
  }
  return ctx.fields;
}

/**
 * What a workflow's id says about the repository it works on: the workflows of a repository are
 * named after it (`pipeline:`, `maintenance:`, `deploy:`, `environment:`, `replication:`,
 * `concurrency:`, `move:` + `<tenant>:<repo>…`; core/*-types.ts), webhook dispatches after their
 * push or redelivery (`webhook:push:`, `webhook:redeliver:` + `<tenant>:<repo>…`) or after the run
 * or deploy they report (`webhook:<run or deploy id>:<state>`). A pipeline's id is its run id.
 */
const REPO_WORKFLOW = /^(?:webhook:)?(pipeline|maintenance|deploy|environment|replication|concurrency|move):([^:/]+):([^:/]+)(?::([^:/]+))?/;
const WEBHOOK_OF_PUSH = /^webhook:(?:push|redeliver):([^:/]+):([^:/]+)(?::|$)/;

/** The tenant, repository and run a workflow id names (none for a workflow not about a repository). */
export function fieldsOfWorkflowId(workflowId: string | undefined): LogFields {
  if (!workflowId) return {};
  const hook = WEBHOOK_OF_PUSH.exec(workflowId);
  if (hook) return { tenant: hook[1], repo: `${hook[1]}/${hook[2]}` };
  const m = REPO_WORKFLOW.exec(workflowId);
  if (!m) return {};
  const [, kind, tenant, repo, push] = m;
  return { tenant, repo: `${tenant}/${repo}`, ...(kind === 'pipeline' && push ? { runId: `pipeline:${tenant}:${repo}:${push}` } : {}) };
}

/**
 * The fields of a piece of work from its input — `runId`, `tenant` with `repo` (a name or
 * `owner/name`), at the top or in a `target` (RepoTarget) — over what its workflow id (or an
 * outbox row's) names. Activities (worker/activity-log-context.ts) and outbox rows use it.
 */
export function workLogFields(input: unknown, workflowId: string | undefined): LogFields {
  const out: LogFields = fieldsOfWorkflowId(workflowId);
  for (const part of [input, (input as { target?: unknown } | undefined)?.target]) {
    if (!part || typeof part !== 'object') continue;
    const { runId, tenant, repo } = part as Record<string, unknown>;
    if (typeof runId === 'string' && runId) out.runId = runId;
    if (typeof tenant === 'string' && tenant) {
      out.tenant = tenant;
      if (typeof repo === 'string' && repo) out.repo = repo.includes('/') ? repo : `${tenant}/${repo}`;
    }
  }
  return out;
}

const API_REPO_PATH = /^\/api\/v1\/repos\/([^/]+)\/([^/]+)/;
const GIT_REPO_PATH = /^\/([^/]+)\/([^/]+?)\.git(?:\/|$)/;

/**
 * The repository a public request path names (`owner/name`): git's `/{owner}/{repo}.git/…` or the
 * API's `/api/v1/repos/{owner}/{repo}…`. For a process that routes by path without parameters (the
 * gateway), to name the repository on the lines it writes for a request.
 */
export function repoOfPath(path: string): string | undefined {
  const m = API_REPO_PATH.exec(path) ?? GIT_REPO_PATH.exec(path);
  if (!m) return undefined;
  try {
    return `${decodeURIComponent(m[1])}/${decodeURIComponent(m[2])}`;
  } catch {
    return undefined; // a malformed escape: the path names nothing
  }
}
