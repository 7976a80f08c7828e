import express from 'express';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errorMiddleware, healthAndMetrics, requestLogger, requireIdentity, route } from '../core/http';
import { httpMetrics } from '../core/metrics';
import { traceRequests } from '../core/tracing';
import type { Logger } from '../core/logger';
import { NotFoundError } from '../core/errors';
import { requirePrincipal } from './authz';
import { idempotency, keepRawBody, type IdempotencyStore } from './idempotency';
import { JSON_TYPES, jsonBodyErrors, jsonObject, parseBody, queryWithoutControlChars, requireJsonBody, validateRequests } from './validation';
import { API_ROUTES } from './schemas/routes';
import { openApiDocument } from './openapi';
import { serveSse } from './event-stream';
import type { RepoService } from './services/repo-service';
import type { RunService } from './services/run-service';
import type { ProtectionService } from './services/protection-service';
import type { CollaboratorService } from './services/collaborator-service';
import type { CommitStatusService } from './services/commit-status-service';
import type { WebhookService } from './services/webhook-service';
import type { TenantService } from './services/tenant-service';
import type { TokenService } from './services/token-service';
import type { SecretService } from './services/secret-service';
import type { DeployService } from './services/deploy-service';
import type { BackupService } from './services/backup-service';
import type { ReplicaService } from './services/replica-service';
import type { DatabaseState } from '../core/db-replicas';
import type { MoveService } from './services/move-service';
import type { AuditService } from './services/audit-service';
import type { ShardMoveService } from './services/shard-move-service';
import type { DatabaseService } from './services/database-service';
import type { readRouting } from './read-routing';
import type { CacheService } from './services/cache-service';
import type { RerunService } from './services/rerun-service';
import type { BrowseService } from './services/browse-service';

export interface ApiServices {
  tenants: TenantService;
  tokens: TokenService;
  repos: RepoService;
  runs: RunService;
  protections: ProtectionService;
  collaborators: CollaboratorService;
  secrets: SecretService;
  deploys: DeployService;
  webhooks: WebhookService;
  commitStatuses: CommitStatusService;
  backups: BackupService;
  replicas: ReplicaService;
  moves: MoveService;
  /** Moving a logical shard to another database (ADR 0026); absent: 404. */
  shardMoves?: ShardMoveService;
  audit: AuditService;
  database?: DatabaseService;
  /** Issue 17 items 3 and 5: pipeline caches and re-runs. */
  caches: CacheService;
  reruns: RerunService;
  /** Issue 18: branches, tags, commits and files of a repository (ADR 0034). */
  browse: BrowseService;
}

/** `GET /api/v1`: the API's links (paths on the gateway; `{…}` to fill in). */
export const API_INDEX = {
  name: 'dotgit',
  version: 'v1',
  links: {
    self: '/api/v1',
    openapi: '/api/v1/openapi.json',
    tokens: '/api/v1/tokens',
    repos: '/api/v1/repos',
    repo: '/api/v1/repos/{owner}/{repo}',
    runs: '/api/v1/repos/{owner}/{repo}/runs',
    run: '/api/v1/runs/{id}',
    runEvents: '/api/v1/runs/{id}/events',
    deploys: '/api/v1/repos/{owner}/{repo}/deploys',
    deploy: '/api/v1/deploys/{id}',
    webhooks: '/api/v1/repos/{owner}/{repo}/webhooks',
    backups: '/api/v1/backups',
    git: '/{owner}/{repo}.git',
    health: '/healthz',
  },
};

/** REST API v1 (CONTRACT). Handlers are thin: parse, call a service, answer. */
export function createApiApp(
  services: ApiServices,
  o: {
    log: Logger;
    internalSecret: string;
    healthChecks: Record<string, () => Promise<unknown>>;
    idempotencyKeys: IdempotencyStore;
    /** What /healthz says besides ok (the database's primary and each standby's lag, ADR 0027). */
    healthDetails?: () => Promise<Record<string, unknown>>;
    /** Reads on Postgres standbys with read-your-writes (ADR 0027). */
    readRouting?: ReturnType<typeof readRouting>;
  },
) {
  const { tenants, tokens, repos, runs, protections, collaborators, secrets, deploys, webhooks, commitStatuses, backups, replicas, moves } = services;
  const app = express();
  app.disable('x-powered-by');
  app.use(httpMetrics('api'));
  app.use(traceRequests('api'));
  // /healthz also names the database's primary and each standby's lag (best effort, never failing the check).
  const details = o.healthDetails;
  if (details) {
    app.get('/healthz', (_req, res, next) => {
      Promise.race([details(), new Promise<Record<string, unknown>>((r) => setTimeout(() => r({}), 2000).unref())])
        .catch(() => ({}))
        .then((extra) => {
          const json = res.json.bind(res);
          res.json = (body: unknown) => json({ ...(body as object), ...extra });
          next();
        }, next);
    });
  }
  app.use(healthAndMetrics(o.healthChecks));
  app.use(requireIdentity(o.internalSecret));
  if (o.readRouting) app.use(o.readRouting.trackWrites);
  app.use(requestLogger(o.log));
  app.use(queryWithoutControlChars, requireJsonBody);
  app.use(express.json({ limit: '1mb', type: JSON_TYPES, verify: keepRawBody }), jsonBodyErrors);
  // Every POST honours Idempotency-Key (CONTRACT), after the caller and body are known.
  app.use(idempotency(o.idempotencyKeys, o.log));
  const v1 = express.Router();

  // Where things are (issue 15 item 6): what the banner's api link opens, anonymously too.
  v1.get('/', (_req, res) => {
    res.json(API_INDEX);
  });
  // The OpenAPI 3.1 document of this API, generated from the schemas requests are validated with.
  let openapi: unknown;
  v1.get('/openapi.json', (_req, res) => {
    res.json((openapi ??= openApiDocument()));
  });

  v1.post('/tenants', route(async (req, res) => {
    res.status(201).json(await tenants.createTenant(requirePrincipal(req.principal), req.body ?? {}, req.requestId));
  }));
  v1.post('/tenants/:tenant/users', route(async (req, res) => {
    res.status(201).json(await tenants.createUser(requirePrincipal(req.principal), String(req.params.tenant), req.body ?? {}, req.requestId));
  }));
  v1.post('/tokens', route(async (req, res) => {
    res.status(201).json(await tokens.createToken(requirePrincipal(req.principal), parseBody(jsonObject, req.body ?? {}), req.requestId));
  }));
  v1.get('/tokens', route(async (req, res) => {
    res.json(await tokens.list(requirePrincipal(req.principal), req.query));
  }));
  v1.delete('/tokens/:id', route(async (req, res) => {
    await tokens.revokeToken(requirePrincipal(req.principal), String(req.params.id), req.requestId);
    res.status(204).end();
  }));
  v1.post('/repos', route(async (req, res) => {
    res.status(201).json(await repos.create(requirePrincipal(req.principal), req.body ?? {}, req.requestId));
  }));
  v1.get('/repos', route(async (req, res) => {
    res.json(await repos.list(req.principal, req.query));
  }));
  v1.get('/repos/:owner/:repo', route(async (req, res) => {
    res.json(await repos.get(req.principal, String(req.params.owner), String(req.params.repo)));
  }));
  v1.patch('/repos/:owner/:repo', route(async (req, res) => {
    res.json(await repos.update(requirePrincipal(req.principal), String(req.params.owner), String(req.params.repo), req.body ?? {}, req.requestId));
  }));
  // Moving a repository to another storage node (platform admins): 202 with the move's workflow id.
  // Moving a logical shard to another database (platform admins, ADR 0026): 202 with the workflow id.
  v1.post('/admin/shards/:shard/move', route(async (req, res) => {
    if (!services.shardMoves) throw new NotFoundError('this api does not move shards');
    res.status(202).json(await services.shardMoves.move(req.principal, String(req.params.shard), req.body ?? {}, req.requestId));
  }));
  v1.post('/repos/:owner/:repo/move', route(async (req, res) => {
    res.status(202).json(await moves.move(req.principal, String(req.params.owner), String(req.params.repo), req.body ?? {}, req.requestId));
  }));
  v1.post('/repos/:owner/:repo/runs', route(async (req, res) => {
    const created = await runs.create(requirePrincipal(req.principal), String(req.params.owner), String(req.params.repo), req.body ?? {}, req.requestId);
    res.status(202).location(created.links.self).json(created);
  }));
  v1.get('/repos/:owner/:repo/runs', route(async (req, res) => {
    res.json(await runs.list(req.principal, String(req.params.owner), String(req.params.repo), req.query));
  }));
  // The repository browser (issue 18, ADR 0034): read-only, from the repository's storage node.
  const pathOf = (req: express.Request) => ((req.params as unknown as { path: string[] }).path ?? []).join('/');
  v1.get('/repos/:owner/:repo/branches', route(async (req, res) => {
    res.json(await services.browse.branches(req.principal, String(req.params.owner), String(req.params.repo)));
  }));
  v1.get('/repos/:owner/:repo/tags', route(async (req, res) => {
    res.json(await services.browse.tags(req.principal, String(req.params.owner), String(req.params.repo)));
  }));
  v1.get('/repos/:owner/:repo/commits', route(async (req, res) => {
    res.json(await services.browse.commits(req.principal, String(req.params.owner), String(req.params.repo), req.query));
  }));
  const tree = route(async (req, res) => {
    res.json(await services.browse.tree(req.principal, String(req.params.owner), String(req.params.repo), pathOf(req), req.query));
  });
  v1.get('/repos/:owner/:repo/tree', tree);
  v1.get('/repos/:owner/:repo/tree/*path', tree);
  v1.get('/repos/:owner/:repo/raw/*path', route(async (req, res) => {
    const path = pathOf(req);
    const { size, commit, stream } = await services.browse.raw(req.principal, String(req.params.owner), String(req.params.repo), path, req.query);
    // A download, never a page of this origin: a pushed .html or .svg is not rendered (nor sniffed) here.
    res.setHeader('Content-Type', 'application/octet-stream');
    res.setHeader('Content-Length', String(size));
    res.setHeader('Content-Disposition', `attachment; filename*=UTF-8''${encodeURIComponent(path.split('/').pop() ?? 'file')}`);
    res.setHeader('Content-Security-Policy', "default-src 'none'; sandbox");
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('X-Dotgit-Commit', commit);
    await pipeline(stream, res);
  }));
  const branchOf = (req: express.Request) => {
    const b = (req.params as unknown as { branch: string | string[] }).branch;
    return Array.isArray(b) ? b.join('/') : b;
  };
  v1.put('/repos/:owner/:repo/protections/*branch', route(async (req, res) => {
    res.json(await protections.put(requirePrincipal(req.principal), String(req.params.owner), String(req.params.repo), branchOf(req), req.body ?? {}, req.requestId));
  }));
  v1.get('/repos/:owner/:repo/protections', route(async (req, res) => {
    res.json(await protections.list(req.principal, String(req.params.owner), String(req.params.repo)));
  }));
  v1.delete('/repos/:owner/:repo/protections/*branch', route(async (req, res) => {
    await protections.remove(requirePrincipal(req.principal), String(req.params.owner), String(req.params.repo), branchOf(req), req.requestId);
    res.status(204).end();
  }));
  v1.put('/repos/:owner/:repo/collaborators/:username', route(async (req, res) => {
    res.json(await collaborators.put(requirePrincipal(req.principal), String(req.params.owner), String(req.params.repo), String(req.params.username), req.body ?? {}, req.requestId));
  }));
  v1.get('/repos/:owner/:repo/collaborators', route(async (req, res) => {
    res.json(await collaborators.list(requirePrincipal(req.principal), String(req.params.owner), String(req.params.repo)));
  }));
  v1.delete('/repos/:owner/:repo/collaborators/:username', route(async (req, res) => {
    await collaborators.remove(requirePrincipal(req.principal), String(req.params.owner), String(req.params.repo), String(req.params.username), req.requestId);
    res.status(204).end();
  }));
  v1.put('/repos/:owner/:repo/secrets/:name', route(async (req, res) => {
    await secrets.put(requirePrincipal(req.principal), String(req.params.owner), String(req.params.repo), String(req.params.name), req.body ?? {}, req.requestId);
    res.status(204).end();
  }));
  v1.get('/repos/:owner/:repo/secrets', route(async (req, res) => {
    res.json(await secrets.list(requirePrincipal(req.principal), String(req.params.owner), String(req.params.repo)));
  }));
  v1.delete('/repos/:owner/:repo/secrets/:name', route(async (req, res) => {
    await secrets.remove(requirePrincipal(req.principal), String(req.params.owner), String(req.params.repo), String(req.params.name), req.query.environment, req.requestId);
    res.status(204).end();
  }));
  // Deploys: created 202 Accepted with the tracking id, then followed by polling or events.
  v1.post('/repos/:owner/:repo/deploys', route(async (req, res) => {
    const created = await deploys.create(requirePrincipal(req.principal), String(req.params.owner), String(req.params.repo), req.body ?? {}, req.requestId);
    res.status(202).location(created.links.self).json(created);
  }));
  v1.get('/repos/:owner/:repo/deploys', route(async (req, res) => {
    res.json(await deploys.list(req.principal, String(req.params.owner), String(req.params.repo), req.query));
  }));
  v1.get('/deploys/:id', route(async (req, res) => {
    res.json(await deploys.get(req.principal, String(req.params.id)));
  }));
  v1.get('/deploys/:id/events', route(async (req, res) => {
    await serveSse(req, res, (after, signal) => deploys.events(req.principal, String(req.params.id), after, signal));
  }));
  v1.post('/deploys/:id/approve', route(async (req, res) => {
    res.json(await deploys.decide(requirePrincipal(req.principal), String(req.params.id), true, req.body ?? {}, req.requestId));
  }));
  v1.post('/deploys/:id/reject', route(async (req, res) => {
    res.json(await deploys.decide(requirePrincipal(req.principal), String(req.params.id), false, req.body ?? {}, req.requestId));
  }));
  v1.post('/deploys/:id/cancel', route(async (req, res) => {
    await deploys.cancel(requirePrincipal(req.principal), String(req.params.id), req.requestId);
    res.status(202).json({ id: req.params.id, status: 'cancelling' });
  }));
  v1.get('/runs', route(async (req, res) => {
    res.json(await runs.recent(req.principal, req.query));
  }));
  v1.get('/runs/:id', route(async (req, res) => {
    res.json(await runs.get(req.principal, String(req.params.id), req.query));
  }));
  v1.get('/runs/:id/logs', route(async (req, res) => {
    const chunks = await runs.logs(req.principal, String(req.params.id), req.query);
    res.type('text/plain; charset=utf-8');
    await pipeline(Readable.from(chunks), res);
  }));
  // Issue 17 item 5: attempt N+1 of a run that ended (all jobs, or only those that did not succeed).
  v1.post('/runs/:id/rerun', route(async (req, res) => {
    res.status(202).json(await services.reruns.rerun(req.principal, String(req.params.id), req.body ?? {}, req.requestId));
  }));
  // Issue 17 item 3: a repository's pipeline dependency caches.
  v1.get('/repos/:owner/:repo/caches', route(async (req, res) => {
    res.json(await services.caches.list(req.principal, String(req.params.owner), String(req.params.repo), req.query));
  }));
  v1.get('/repos/:owner/:repo/caches/:id', route(async (req, res) => {
    res.json(await services.caches.get(req.principal, String(req.params.owner), String(req.params.repo), String(req.params.id)));
  }));
  v1.delete('/repos/:owner/:repo/caches/:id', route(async (req, res) => {
    await services.caches.remove(requirePrincipal(req.principal), String(req.params.owner), String(req.params.repo), String(req.params.id), req.requestId);
    res.status(204).end();
  }));
  v1.get('/runs/:id/events', route(async (req, res) => {
    await serveSse(req, res, (after, signal) => runs.events(req.principal, String(req.params.id), after, signal));
  }));
  v1.get('/runs/:id/artifacts', route(async (req, res) => {
    res.json(await runs.artifacts(req.principal, String(req.params.id)));
  }));
  v1.get('/runs/:id/artifacts/*path', route(async (req, res) => {
    const parts = (req.params as unknown as { path: string[] }).path;
    const { size, stream } = await runs.artifact(req.principal, String(req.params.id), parts.join('/'), req.query);
    res.setHeader('Content-Type', 'application/octet-stream');
    res.setHeader('Content-Length', String(size));
    stream.pipe(res);
  }));
  v1.post('/runs/:id/cancel', route(async (req, res) => {
    await runs.cancel(req.principal, String(req.params.id));
    res.status(202).json({ id: req.params.id, status: 'cancelling' });
  }));

  v1.post('/repos/:owner/:repo/webhooks', route(async (req, res) => {
    res.status(201).json(await webhooks.create(requirePrincipal(req.principal), String(req.params.owner), String(req.params.repo), req.body ?? {}, req.requestId));
  }));
  v1.get('/repos/:owner/:repo/webhooks', route(async (req, res) => {
    res.json(await webhooks.list(requirePrincipal(req.principal), String(req.params.owner), String(req.params.repo)));
  }));
  v1.get('/repos/:owner/:repo/webhooks/:id', route(async (req, res) => {
    res.json(await webhooks.get(requirePrincipal(req.principal), String(req.params.owner), String(req.params.repo), String(req.params.id)));
  }));
  v1.delete('/repos/:owner/:repo/webhooks/:id', route(async (req, res) => {
    await webhooks.remove(requirePrincipal(req.principal), String(req.params.owner), String(req.params.repo), String(req.params.id), req.requestId);
    res.status(204).end();
  }));
  v1.get('/repos/:owner/:repo/webhooks/:id/deliveries', route(async (req, res) => {
    res.json(await webhooks.deliveries(requirePrincipal(req.principal), String(req.params.owner), String(req.params.repo), String(req.params.id), req.query));
  }));
  v1.post('/repos/:owner/:repo/webhooks/:id/deliveries/:delivery/redeliver', route(async (req, res) => {
    res.status(202).json(await webhooks.redeliver(requirePrincipal(req.principal), String(req.params.owner), String(req.params.repo), String(req.params.id), String(req.params.delivery), req.requestId));
  }));
  v1.get('/repos/:owner/:repo/commits/:sha/status', route(async (req, res) => {
    res.json(await commitStatuses.combined(req.principal, String(req.params.owner), String(req.params.repo), String(req.params.sha)));
  }));
  v1.get('/repos/:owner/:repo/replicas', route(async (req, res) => {
    res.json(await replicas.list(req.principal, String(req.params.owner), String(req.params.repo)));
  }));
  v1.post('/backups', route(async (req, res) => {
    res.status(202).json(await backups.create(req.principal, req.body ?? {}, req.requestId));
  }));
  v1.get('/backups', route(async (req, res) => {
    res.json(await backups.list(req.principal));
  }));
  v1.post('/restores', route(async (req, res) => {
    res.status(202).json(await backups.restore(req.principal, req.body ?? {}, req.requestId));
  }));
  v1.get('/restores', route(async (req, res) => {
    res.json(await backups.listRestores(req.principal));
  }));
  v1.get('/admin/replicas', route(async (req, res) => {
    // The same best-effort database state /healthz reports.
    const extra = details ? ((await details().catch(() => ({}))) as { database?: DatabaseState }) : {};
    res.json(replicas.overview(req.principal, extra.database));
  }));
  v1.get('/restores/:id', route(async (req, res) => {
    res.json(await backups.getRestore(req.principal, String(req.params.id)));
  }));
  // A planned switchover of the Postgres primary (platform admins; ADR 0027).
  v1.post('/admin/database/switchover', route(async (req, res) => {
    if (!services.database) throw new NotFoundError('no database operations here');
    res.status(202).json(await services.database.switchover(req.principal, req.body ?? {}, req.requestId));
  }));
  // The audit log (tenant admins: their tenant; platform admins: any) and its hash chains' check.
  v1.get('/audit', route(async (req, res) => {
    res.json(await services.audit.list(req.principal, req.query));
  }));
  v1.get('/audit/verify', route(async (req, res) => {
    res.json(await services.audit.verify(req.principal, req.query));
  }));

  // Every request is checked against its route's schemas (api/schemas/routes.ts) before a handler runs.
  app.use('/api/v1', validateRequests(API_ROUTES), ...(o.readRouting ? [o.readRouting.readsOnReplicas] : []), v1);
  app.use((req, _res, next) => next(new NotFoundError(`no route for ${req.method} ${req.path}`)));
  app.use(errorMiddleware(o.log));
  return app;
}
