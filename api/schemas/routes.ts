import { z } from 'zod';
import { SECRET_NAME } from '../../core/pipeline-secrets';
import { emptyBody, links, nameField, ownerRepoParams, pageQuery, runIdParam } from './common';
import { createRepoBody, listReposQuery, patchRepoBody, repoAnswer, repoListAnswer } from './repos';
import {
  artifactListAnswer,
  artifactQuery,
  cancellingAnswer,
  createDeployBody,
  createRunBody,
  decisionAnswer,
  decisionBody,
  deployAnswer,
  deployCreatedAnswer,
  deployListAnswer,
  eventsQuery,
  listDeploysQuery,
  listRunsQuery,
  recentRunsQuery,
  logsQuery,
  runAnswer,
  runCreatedAnswer,
  runListAnswer,
} from './runs';
import {
  collaboratorAnswer,
  collaboratorBody,
  collaboratorListAnswer,
  commitStatusAnswer,
  deliveriesQuery,
  deliveryListAnswer,
  redeliveryAnswer,
  moveAnswer,
  moveBody,
  protectionAnswer,
  protectionBody,
  protectionListAnswer,
  replicaListAnswer,
  secretBody,
  secretListAnswer,
  secretQuery,
  webhookAnswer,
  webhookBody,
  webhookListAnswer,
} from './settings';
import { auditListAnswer, auditQuery, auditVerifyAnswer, auditVerifyQuery } from './audit';
import { shardMoveAnswer, shardMoveBody, shardParams } from './shards';
import { branchListAnswer, commitListAnswer, commitsQuery, refQuery, tagListAnswer, treeAnswer, treePathParams } from './browse';
import { cacheAnswer, cacheIdParams, cacheListAnswer, cacheListQuery, rerunAnswer, rerunBody, runQuery } from './pipelines';
import { backupBody, backupListAnswer, backupStartedAnswer, replicaOverviewAnswer, restoreAnswer, restoreBody, restoreListAnswer, restoreStartedAnswer, switchoverBody, switchoverStartedAnswer, tenantAnswer, tenantBody, tokenAnswer, tokenBody, tokenListAnswer, userAnswer, userBody } from './admin';

/**
 * Every route of the REST API v1, with the schemas of its path parameters, query, body and answers:
 * the api validates requests with it before any handler runs (api/validation.ts
 * `validateRequests`), the OpenAPI document is generated from it (api/openapi.ts), and a test
 * checks it against the routes the express app has (test/unit/openapi.test.ts). Paths are in
 * express syntax, relative to `/api/v1`; `*name` is a wildcard that may hold `/`.
 */

export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'delete';

export interface ApiResponse {
  description: string;
  /** JSON answer; absent with `contentType` for text and streams, and for 202/204 without a body. */
  schema?: z.ZodType;
  contentType?: string;
}

export interface ApiRoute {
  method: HttpMethod;
  path: string;
  summary: string;
  tag: string;
  params?: z.ZodObject;
  query?: z.ZodObject;
  /** The JSON body; a request without one is read as `{}`. */
  body?: z.ZodType;
  responses: Record<number, ApiResponse>;
  /** Anonymous callers may use it (public repositories' reads; the index). */
  anonymous?: boolean;
}

const json = (description: string, schema: z.ZodType): ApiResponse => ({ description, schema });
const noContent: ApiResponse = { description: 'done; no body' };
const sse: ApiResponse = { description: 'Server-Sent Events (log, step, status), resumable with Last-Event-ID; also a WebSocket at the same path', contentType: 'text/event-stream' };
/** A run's feed also tells when each job starts and stops waiting (ADR 0044). */
const runSse: ApiResponse = { ...sse, description: 'Server-Sent Events (log, step, status, and pending: {job, reason, message}, reason null when the job stops waiting), resumable with Last-Event-ID; also a WebSocket at the same path' };

const idParam = z.object({ id: runIdParam });
const repoIdParams = ownerRepoParams.extend({ id: z.string().min(1).max(30) });
const branchParams = ownerRepoParams.extend({ branch: z.string().min(1).max(255).meta({ description: 'branch name or glob (may contain /)' }) });
const userParams = ownerRepoParams.extend({ username: nameField('username') });
const SECRET_NAME_MESSAGE = 'secret names are environment variable names: letters, digits and _, not starting with a digit, at most 100';
const secretParams = ownerRepoParams.extend({ name: z.string({ error: SECRET_NAME_MESSAGE }).regex(SECRET_NAME, { error: SECRET_NAME_MESSAGE }) });
const shaParams = ownerRepoParams.extend({ sha: z.string().min(1).max(64) });

/** `GET /api/v1`: where things are (URLs relative to the gateway, `{…}` to fill in). */
export const linksAnswer = z.object({ name: z.string(), version: z.string(), links }).meta({ id: 'ApiIndex' });

export const API_ROUTES: ApiRoute[] = [
  { method: 'get', path: '/', tag: 'meta', summary: 'The API’s links, the OpenAPI document’s among them', anonymous: true, responses: { 200: json('links', linksAnswer) } },
  { method: 'get', path: '/openapi.json', tag: 'meta', summary: 'This OpenAPI 3.1 document', anonymous: true, responses: { 200: { description: 'the document', contentType: 'application/json' } } },

  { method: 'post', path: '/tenants', tag: 'tenants', summary: 'Create a tenant (platform admins)', body: tenantBody, responses: { 201: json('created', tenantAnswer) } },
  { method: 'post', path: '/tenants/:tenant/users', tag: 'tenants', summary: 'Create a user in a tenant (tenant admins)', params: z.object({ tenant: nameField('tenant') }), body: userBody, responses: { 201: json('created', userAnswer) } },
  { method: 'post', path: '/tokens', tag: 'tokens', summary: 'Create an API token derived from the caller’s credential', body: tokenBody, responses: { 201: json('created; the token is shown once', tokenAnswer) } },
  { method: 'get', path: '/tokens', tag: 'tokens', summary: 'The caller’s own live tokens, a page at a time (never their secrets)', query: pageQuery, responses: { 200: json('tokens', tokenListAnswer) } },
  { method: 'delete', path: '/tokens/:id', tag: 'tokens', summary: 'Revoke a token (and the tokens derived from it)', params: z.object({ id: z.string().regex(/^\d{1,18}$/, { error: 'id must be a token id' }) }), responses: { 204: noContent } },

  { method: 'post', path: '/repos', tag: 'repos', summary: 'Create a repository', body: createRepoBody, responses: { 201: json('created', repoAnswer) } },
  { method: 'get', path: '/repos', tag: 'repos', summary: 'Repositories the caller may read (public ones anonymously), by id, a page at a time', query: listReposQuery, anonymous: true, responses: { 200: json('repositories', repoListAnswer) } },
  { method: 'get', path: '/repos/:owner/:repo', tag: 'repos', summary: 'A repository', params: ownerRepoParams, anonymous: true, responses: { 200: json('the repository', repoAnswer) } },
  { method: 'patch', path: '/repos/:owner/:repo', tag: 'repos', summary: 'Change a repository: its default branch (repository admins)', params: ownerRepoParams, body: patchRepoBody, responses: { 200: json('the repository as changed', repoAnswer) } },
  { method: 'post', path: '/repos/:owner/:repo/move', tag: 'repos', summary: 'Move a repository to another storage node (platform admins)', params: ownerRepoParams, body: moveBody, responses: { 202: json('the move workflow started', moveAnswer) } },
  { method: 'post', path: '/admin/shards/:shard/move', tag: 'admin', summary: 'Move a logical shard to another database of the shard map while the platform serves (platform admins)', params: shardParams, body: shardMoveBody, responses: { 202: json('the shardMove workflow started', shardMoveAnswer) } },
  { method: 'get', path: '/repos/:owner/:repo/replicas', tag: 'repos', summary: 'State of the repository’s replicas per zone', params: ownerRepoParams, anonymous: true, responses: { 200: json('replicas', replicaListAnswer) } },
  { method: 'get', path: '/repos/:owner/:repo/commits/:sha/status', tag: 'repos', summary: 'Combined status of a commit (GitHub-shaped)', params: shaParams, anonymous: true, responses: { 200: json('combined status', commitStatusAnswer) } },

  { method: 'get', path: '/repos/:owner/:repo/branches', tag: 'browse', summary: 'Branches of the repository by name, each with its commit', params: ownerRepoParams, anonymous: true, responses: { 200: json('branches', branchListAnswer) } },
  { method: 'get', path: '/repos/:owner/:repo/tags', tag: 'browse', summary: 'Tags of the repository by name, each with its commit', params: ownerRepoParams, anonymous: true, responses: { 200: json('tags', tagListAnswer) } },
  { method: 'get', path: '/repos/:owner/:repo/commits', tag: 'browse', summary: 'Commits of a ref, newest first, each with its latest pipeline run', params: ownerRepoParams, query: commitsQuery, anonymous: true, responses: { 200: json('commits', commitListAnswer) } },
  { method: 'get', path: '/repos/:owner/:repo/tree', tag: 'browse', summary: 'The root directory at a ref', params: ownerRepoParams, query: refQuery, anonymous: true, responses: { 200: json('the root tree', treeAnswer) } },
  { method: 'get', path: '/repos/:owner/:repo/tree/*path', tag: 'browse', summary: 'A directory’s entries, or a file’s size and id, at a ref', params: treePathParams, query: refQuery, anonymous: true, responses: { 200: json('the tree or file', treeAnswer) } },
  { method: 'get', path: '/repos/:owner/:repo/raw/*path', tag: 'browse', summary: 'A file’s bytes at a ref, as a download (at most 10 MiB; 413 above)', params: treePathParams, query: refQuery, anonymous: true, responses: { 200: { description: 'the file', contentType: 'application/octet-stream' } } },

  { method: 'put', path: '/repos/:owner/:repo/protections/*branch', tag: 'protections', summary: 'Protect a branch or glob (repository admins)', params: branchParams, body: protectionBody, responses: { 200: json('the protection', protectionAnswer) } },
  { method: 'get', path: '/repos/:owner/:repo/protections', tag: 'protections', summary: 'Protected branches', params: ownerRepoParams, anonymous: true, responses: { 200: json('protections', protectionListAnswer) } },
  { method: 'delete', path: '/repos/:owner/:repo/protections/*branch', tag: 'protections', summary: 'Lift a protection', params: branchParams, responses: { 204: noContent } },

  { method: 'put', path: '/repos/:owner/:repo/collaborators/:username', tag: 'collaborators', summary: 'Grant a user access to the repository (repository admins)', params: userParams, body: collaboratorBody, responses: { 200: json('the grant', collaboratorAnswer) } },
  { method: 'get', path: '/repos/:owner/:repo/collaborators', tag: 'collaborators', summary: 'Grants of the repository', params: ownerRepoParams, responses: { 200: json('grants', collaboratorListAnswer) } },
  { method: 'delete', path: '/repos/:owner/:repo/collaborators/:username', tag: 'collaborators', summary: 'Remove a grant', params: userParams, responses: { 204: noContent } },

  { method: 'put', path: '/repos/:owner/:repo/secrets/:name', tag: 'secrets', summary: 'Set a pipeline secret (write access); sealed, never returned', params: secretParams, body: secretBody, responses: { 204: noContent } },
  { method: 'get', path: '/repos/:owner/:repo/secrets', tag: 'secrets', summary: 'Names of the repository’s secrets', params: ownerRepoParams, responses: { 200: json('secret names', secretListAnswer) } },
  { method: 'delete', path: '/repos/:owner/:repo/secrets/:name', tag: 'secrets', summary: 'Remove a secret', params: secretParams, query: secretQuery, responses: { 204: noContent } },

  { method: 'post', path: '/repos/:owner/:repo/runs', tag: 'runs', summary: 'Start a pipeline run of a ref by hand', params: ownerRepoParams, body: createRunBody, responses: { 202: json('queued', runCreatedAnswer) } },
  { method: 'get', path: '/repos/:owner/:repo/runs', tag: 'runs', summary: 'Runs of the repository, newest first, each with a steps summary', params: ownerRepoParams, query: listRunsQuery, anonymous: true, responses: { 200: json('runs', runListAnswer) } },
  { method: 'get', path: '/runs', tag: 'runs', summary: 'Recent runs across the repositories of the caller’s tenant and those granted to the caller, newest first, each with a steps summary', query: recentRunsQuery, responses: { 200: json('runs', runListAnswer) } },
  { method: 'get', path: '/runs/:id', tag: 'runs', summary: 'A run with its steps', params: idParam, query: runQuery, anonymous: true, responses: { 200: json('the run', runAnswer) } },
  { method: 'get', path: '/runs/:id/logs', tag: 'runs', summary: 'Logs of a run’s steps as text', params: idParam, query: logsQuery, anonymous: true, responses: { 200: { description: 'the log', contentType: 'text/plain' } } },
  { method: 'get', path: '/runs/:id/events', tag: 'runs', summary: 'Live events of a run', params: idParam, query: eventsQuery, anonymous: true, responses: { 200: runSse } },
  { method: 'get', path: '/runs/:id/artifacts', tag: 'runs', summary: 'Artifacts of a run', params: idParam, anonymous: true, responses: { 200: json('artifacts', artifactListAnswer) } },
  { method: 'get', path: '/runs/:id/artifacts/*path', tag: 'runs', summary: 'The bytes of an artifact', params: idParam.extend({ path: z.string().min(1).max(4096) }), query: artifactQuery, anonymous: true, responses: { 200: { description: 'the file', contentType: 'application/octet-stream' } } },
  { method: 'post', path: '/runs/:id/cancel', tag: 'runs', summary: 'Cancel a run', params: idParam, body: emptyBody, responses: { 202: json('cancelling', cancellingAnswer) } },
  { method: 'post', path: '/runs/:id/rerun', tag: 'runs', summary: 'Re-run a run that ended, as its next attempt: every job, or only the jobs that did not succeed', params: idParam, body: rerunBody, responses: { 202: json('the new attempt', rerunAnswer) } },
  { method: 'get', path: '/repos/:owner/:repo/caches', tag: 'caches', summary: 'Pipeline dependency caches of the repository, most recently used first', params: ownerRepoParams, query: cacheListQuery, anonymous: true, responses: { 200: json('caches', cacheListAnswer) } },
  { method: 'get', path: '/repos/:owner/:repo/caches/:id', tag: 'caches', summary: 'A pipeline cache', params: ownerRepoParams.extend(cacheIdParams.shape), anonymous: true, responses: { 200: json('the cache', cacheAnswer) } },
  { method: 'delete', path: '/repos/:owner/:repo/caches/:id', tag: 'caches', summary: 'Delete a pipeline cache (write access)', params: ownerRepoParams.extend(cacheIdParams.shape), responses: { 204: noContent } },

  { method: 'post', path: '/repos/:owner/:repo/deploys', tag: 'deploys', summary: 'Deploy a ref to an environment of the pipeline file', params: ownerRepoParams, body: createDeployBody, responses: { 202: json('queued', deployCreatedAnswer) } },
  { method: 'get', path: '/repos/:owner/:repo/deploys', tag: 'deploys', summary: 'Deploys of the repository, newest first', params: ownerRepoParams, query: listDeploysQuery, anonymous: true, responses: { 200: json('deploys', deployListAnswer) } },
  { method: 'get', path: '/deploys/:id', tag: 'deploys', summary: 'A deploy with its steps', params: idParam, anonymous: true, responses: { 200: json('the deploy', deployAnswer) } },
  { method: 'get', path: '/deploys/:id/events', tag: 'deploys', summary: 'Live events of a deploy', params: idParam, query: eventsQuery, anonymous: true, responses: { 200: sse } },
  { method: 'post', path: '/deploys/:id/approve', tag: 'deploys', summary: 'Approve a deploy waiting for approval', params: idParam, body: decisionBody, responses: { 200: json('decided', decisionAnswer) } },
  { method: 'post', path: '/deploys/:id/reject', tag: 'deploys', summary: 'Reject a deploy waiting for approval', params: idParam, body: decisionBody, responses: { 200: json('decided', decisionAnswer) } },
  { method: 'post', path: '/deploys/:id/cancel', tag: 'deploys', summary: 'Cancel a deploy', params: idParam, body: emptyBody, responses: { 202: json('cancelling', cancellingAnswer) } },

  { method: 'post', path: '/repos/:owner/:repo/webhooks', tag: 'webhooks', summary: 'Add a webhook (repository admins)', params: ownerRepoParams, body: webhookBody, responses: { 201: json('created', webhookAnswer) } },
  { method: 'get', path: '/repos/:owner/:repo/webhooks', tag: 'webhooks', summary: 'Webhooks of the repository', params: ownerRepoParams, responses: { 200: json('webhooks', webhookListAnswer) } },
  { method: 'get', path: '/repos/:owner/:repo/webhooks/:id', tag: 'webhooks', summary: 'A webhook', params: repoIdParams, responses: { 200: json('the webhook', webhookAnswer) } },
  { method: 'delete', path: '/repos/:owner/:repo/webhooks/:id', tag: 'webhooks', summary: 'Remove a webhook', params: repoIdParams, responses: { 204: noContent } },
  { method: 'get', path: '/repos/:owner/:repo/webhooks/:id/deliveries', tag: 'webhooks', summary: 'Delivery attempts of a webhook, newest first', params: repoIdParams, query: deliveriesQuery, responses: { 200: json('deliveries', deliveryListAnswer) } },
  { method: 'post', path: '/repos/:owner/:repo/webhooks/:id/deliveries/:delivery/redeliver', tag: 'webhooks', summary: 'Send a recorded delivery’s body to the hook again, under a new delivery id (repository admins)', params: repoIdParams.extend({ delivery: z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, { error: 'delivery must be a delivery id (a UUID)' }) }), body: emptyBody, responses: { 202: json('queued', redeliveryAnswer) } },

  { method: 'post', path: '/backups', tag: 'backups', summary: 'Take a backup now (platform admins)', body: backupBody, responses: { 202: json('started', backupStartedAnswer) } },
  { method: 'get', path: '/backups', tag: 'backups', summary: 'Backups, newest first (platform admins)', responses: { 200: json('backups', backupListAnswer) } },
  { method: 'post', path: '/restores', tag: 'backups', summary: 'Restore to a point in time beside the live data (platform admins)', body: restoreBody, responses: { 202: json('started', restoreStartedAnswer) } },
  { method: 'get', path: '/restores', tag: 'backups', summary: 'Restores and restore drills, newest first (platform admins)', responses: { 200: json('restores', restoreListAnswer) } },
  { method: 'get', path: '/admin/replicas', tag: 'admin', summary: 'The database primary, each standby’s lag, and the replica zones (platform admins)', responses: { 200: json('replication', replicaOverviewAnswer) } },
  { method: 'get', path: '/restores/:id', tag: 'backups', summary: 'A restore', params: z.object({ id: z.string().min(1).max(200) }), responses: { 200: json('the restore', restoreAnswer) } },
  { method: 'post', path: '/admin/database/switchover', tag: 'database', summary: 'Move the Postgres primary to a standby, planned (platform admins; with Patroni)', body: switchoverBody, responses: { 202: json('started', switchoverStartedAnswer) } },

  { method: 'get', path: '/audit', tag: 'audit', summary: 'Audit events, oldest first, a page at a time (tenant admins: their tenant; platform admins: any)', query: auditQuery, responses: { 200: json('events', auditListAnswer) } },
  { method: 'get', path: '/audit/verify', tag: 'audit', summary: 'Check the audit log’s hash chains (platform admins)', query: auditVerifyQuery, responses: { 200: json('the check', auditVerifyAnswer) } },
];

/** `/repos/:owner/:repo/protections/*branch` → `/repos/{owner}/{repo}/protections/{branch}`. */
export function openApiPath(expressPath: string): string {
  return expressPath.replace(/[:*]([A-Za-z_]\w*)/g, '{$1}');
}
