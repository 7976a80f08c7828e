import { Writable } from 'node:stream';
import pino from 'pino';
import { fieldsOfWorkflowId, noteLogRepo, repoOfPath, withLogContext, workLogFields } from '../../core/log-context';
import { lineFields } from '../../core/logger';

// Issue 14 item 5 (ADR 0028): lines written while handling a request or activity carry its
// tenant, repo and run, whichever logger writes them, and no key twice.

function capture() {
  const lines: string[] = [];
  const out = new Writable({ write: (chunk: Buffer, _enc, done) => (lines.push(chunk.toString().trim()), done()) });
  return { log: pino({ base: { service: 't' }, mixin: lineFields }, out), lines };
}

test('a line inside a context carries its fields, the repository from the route parameters or noted later', async () => {
  const { log, lines } = capture();
  log.info('outside');
  let params: Record<string, unknown> = {};
  await withLogContext({ tenant: 'acme', requestId: 'r1' }, async () => {
    log.info('before routing');
    params = { owner: 'acme', repo: 'web' };
    await new Promise((r) => setTimeout(r, 1));
    log.info('in the route');
  }, () => params);
  await withLogContext({ tenant: 'acme' }, async () => {
    await Promise.resolve();
    noteLogRepo('acme/found');
    log.child({ tenant: 'bound' }).info({ runId: 'given' }, 'child');
  });
  const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(parsed[0]).not.toHaveProperty('repo');
  expect(parsed[1]).toMatchObject({ tenant: 'acme', requestId: 'r1' });
  expect(parsed[1]).not.toHaveProperty('repo');
  expect(parsed[2]).toMatchObject({ tenant: 'acme', requestId: 'r1', repo: 'acme/web' });
  // The line's and the logger's own keys win, written once.
  expect(parsed[3]).toMatchObject({ tenant: 'bound', repo: 'acme/found', runId: 'given' });
  expect(lines[3].match(/"tenant":/g)).toHaveLength(1);
});

test("an activity's fields come from its input, else from its workflow's id", () => {
  expect(fieldsOfWorkflowId('pipeline:acme:web:0123abcd')).toEqual({ tenant: 'acme', repo: 'acme/web', runId: 'pipeline:acme:web:0123abcd' });
  expect(fieldsOfWorkflowId('deploy:acme:web:prod:x')).toEqual({ tenant: 'acme', repo: 'acme/web' });
  expect(fieldsOfWorkflowId('maintenance:acme:web')).toEqual({ tenant: 'acme', repo: 'acme/web' });
  expect(fieldsOfWorkflowId('housekeeping')).toEqual({});
  expect(fieldsOfWorkflowId(undefined)).toEqual({});
  expect(workLogFields({ runId: 'r', tenantId: 3, tenant: 'acme', repo: 'api' }, 'backup-1')).toEqual({ runId: 'r', tenant: 'acme', repo: 'acme/api' });
  expect(workLogFields({ runId: 'pipeline:acme:web:1', tenantId: 3 }, 'pipeline:acme:web:1')).toEqual({ tenant: 'acme', repo: 'acme/web', runId: 'pipeline:acme:web:1' });
  expect(workLogFields(undefined, 'backup-1')).toEqual({});
});

test('every workflow named after a repository names it: replication, concurrency, moves, webhook dispatches (a run\'s: its run too)', () => {
  expect(fieldsOfWorkflowId('replication:acme:web')).toEqual({ tenant: 'acme', repo: 'acme/web' });
  expect(fieldsOfWorkflowId('concurrency:acme:web:deploy-main')).toEqual({ tenant: 'acme', repo: 'acme/web' });
  expect(fieldsOfWorkflowId('move:acme:web')).toEqual({ tenant: 'acme', repo: 'acme/web' });
  expect(fieldsOfWorkflowId('environment:acme:web:production')).toEqual({ tenant: 'acme', repo: 'acme/web' });
  expect(fieldsOfWorkflowId('webhook:push:acme:web:0123abcd')).toEqual({ tenant: 'acme', repo: 'acme/web' });
  expect(fieldsOfWorkflowId('webhook:redeliver:acme:web:7:d1:u1')).toEqual({ tenant: 'acme', repo: 'acme/web' });
  expect(fieldsOfWorkflowId('webhook:pipeline:acme:web:0123abcd:completed')).toEqual({ tenant: 'acme', repo: 'acme/web', runId: 'pipeline:acme:web:0123abcd' });
  expect(fieldsOfWorkflowId('webhook:deploy:acme:web:production:x:succeeded')).toEqual({ tenant: 'acme', repo: 'acme/web' });
  expect(fieldsOfWorkflowId('shard-move:3')).toEqual({});
  // A replication activity's input holds the repository in its target.
  expect(workLogFields({ target: { tenantId: 1, tenant: 'acme', repoId: 2, repo: 'web' }, zone: 'b' }, undefined)).toEqual({ tenant: 'acme', repo: 'acme/web' });
});

test('a public path names its repository: git and the API, nothing else', () => {
  expect(repoOfPath('/acme/web.git/git-receive-pack')).toBe('acme/web');
  expect(repoOfPath('/acme/web.git/info/refs')).toBe('acme/web');
  expect(repoOfPath('/api/v1/repos/acme/web/runs')).toBe('acme/web');
  expect(repoOfPath('/api/v1/repos/acme/web')).toBe('acme/web');
  expect(repoOfPath('/api/v1/repos')).toBeUndefined();
  expect(repoOfPath('/api/v1/runs/pipeline%3Aacme%3Aweb%3A1')).toBeUndefined();
  expect(repoOfPath('/healthz')).toBeUndefined();
  expect(repoOfPath('/api/v1/repos/%E0%A4%A/web')).toBeUndefined();
});
