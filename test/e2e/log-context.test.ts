import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import pg from 'pg';
import pino from 'pino';
import { createDb, type Db } from '../../core/db';
import { lineFields } from '../../core/logger';
import { drainOutbox } from '../../core/outbox-drainer';
import { createGatewayApp } from '../../gateway/app';
import { platformInfo } from '../harness/platform-info';
import { createPrivateRepo, createTenantWithAdmin, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo } from '../helpers/git';

// Issue 14 item 5: the lines the git-server's hook calls, the outbox relays and the gateway write
// about one push, run or request name its tenant, repository and run (core/log-context.ts), read
// from real log output: the platform's git-server log, and the lines of the relay's and the
// gateway's own code through the processes' logger options (core/logger.ts's mixin).

let t: TenantFixture;
let db: Db;
beforeAll(async () => {
  t = await createTenantWithAdmin();
  db = createDb(platformInfo().databaseUrl, 2);
});
afterAll(() => db.end());

/** A pino logger as core/logger.ts makes one (the same mixin), writing its lines here. */
function capturedLogger(level: pino.Level = 'info') {
  const lines: Record<string, unknown>[] = [];
  const out = new Writable({ write: (chunk: Buffer, _enc, done) => (lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>), done()) });
  return { log: pino({ level, base: { service: 'test' }, mixin: lineFields }, out), lines };
}

test("the git-server's hook calls log in the push's context: request, trace, tenant and repository on every line", async () => {
  const repo = await createPrivateRepo(t, 'hooklog');
  const requestId = `req-${randomBytes(8).toString('hex')}`;
  const traceId = randomBytes(16).toString('hex');
  const work = await localRepo({ 'README.md': 'hello\n' });
  const push = await git(['-c', `http.extraHeader=X-Request-Id: ${requestId}`, '-c', `http.extraHeader=traceparent: 00-${traceId}-00f067aa0ba902b7-01`, 'push', cloneUrl(t.tenant, repo, t.token), 'main'], work);
  expect(push.code).toBe(0);
  const file = path.join(platformInfo().dataDir, 'logs', 'git-server.log');
  let recorded: Record<string, unknown> | undefined;
  for (let i = 0; i < 40 && !recorded; i++) {
    recorded = readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l.includes(requestId))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.msg === 'push recorded');
    if (!recorded) await new Promise((r) => setTimeout(r, 100));
  }
  // Written by the post-receive hook's call, which has no request logger: the tenant comes from its context.
  expect(recorded).toEqual(expect.objectContaining({ requestId, traceId, tenant: t.tenant, repo: `${t.tenant}/${repo}` }));
});

test("an outbox relay's lines about a row name its run, tenant and repository, from the row's payload or its workflow id", async () => {
  // Tables of this session's own shaped like the outboxes: the platform's relays never claim their rows.
  const pool = new pg.Pool({ connectionString: platformInfo().databaseUrl, max: 1, idleTimeoutMillis: 0 });
  try {
    await pool.query(`CREATE TEMP TABLE logctx_push (LIKE push_outbox INCLUDING DEFAULTS INCLUDING IDENTITY)`);
    await pool.query(`CREATE TEMP TABLE logctx_webhook (LIKE webhook_outbox INCLUDING DEFAULTS INCLUDING IDENTITY)`);
    // A pipeline start: its payload names the run and repository.
    const runId = `pipeline:${t.tenant}:web:${randomBytes(8).toString('hex')}`;
    await pool.query(`INSERT INTO logctx_push (tenant_id, run_id, payload) VALUES (1, $1, $2)`, [runId, JSON.stringify({ runId, tenantId: 1, tenant: t.tenant, repo: 'web' })]);
    // A push's webhook dispatch: only its workflow id names the repository.
    await pool.query(`INSERT INTO logctx_webhook (tenant_id, workflow_id, payload) VALUES (1, $1, '{"tenantId":1,"repoId":2,"events":[]}')`, [`webhook:push:${t.tenant}:api:${randomBytes(4).toString('hex')}`]);
    const { log, lines } = capturedLogger();
    const relay = (table: string, outcome: 'done' | { permanent: true; message: string }) =>
      drainOutbox(
        pool,
        table,
        async () => {
          await new Promise((r) => setTimeout(r, 5)); // the line comes after an await, as a relay's would
          log.info({ table }, 'handing on');
          return outcome;
        },
        { onPermanent: async () => log.warn({ table }, 'refused for good') },
      );
    expect(await relay('logctx_push', 'done')).toBe(1);
    expect(await relay('logctx_webhook', { permanent: true, message: 'refused' })).toBe(0);
    expect(lines.map((l) => [l.table, l.msg, l.runId, l.tenant, l.repo])).toEqual([
      ['logctx_push', 'handing on', runId, t.tenant, `${t.tenant}/web`],
      ['logctx_webhook', 'handing on', undefined, t.tenant, `${t.tenant}/api`],
      ['logctx_webhook', 'refused for good', undefined, t.tenant, `${t.tenant}/api`],
    ]);
  } finally {
    await pool.end();
  }
});

test("the gateway's lines about a request name its id, the caller's tenant and the repository of its path", async () => {
  const repo = await createPrivateRepo(t, 'gwlog');
  const p = platformInfo();
  const { log, lines } = capturedLogger('debug');
  const app = createGatewayApp({
    db,
    log,
    internalSecret: p.internalSecret,
    upstreams: { api: new URL(`http://127.0.0.1:${p.apiPort}`), git: new URL(`http://127.0.0.1:${p.gitPort}`) },
    healthChecks: {},
  });
  const server = http.createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const requestId = `req-${randomBytes(8).toString('hex')}`;
    const res = await fetch(`${base}/api/v1/repos/${t.tenant}/${repo}`, { headers: { authorization: `Bearer ${t.token}`, 'x-request-id': requestId } });
    expect(res.status).toBe(200);
    expect(lines.find((l) => l.msg === 'forward')).toEqual(expect.objectContaining({ requestId, tenant: t.tenant, repo: `${t.tenant}/${repo}` }));
  } finally {
    server.closeAllConnections();
    server.close();
  }
});
