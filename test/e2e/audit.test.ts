import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { platformInfo } from '../harness/platform-info';
import { tenantDatabaseUrl } from '../helpers/shard-databases';
import { api, createPrivateRepo, createTenantWithAdmin, uniqueName, type TenantFixture } from '../helpers/api-client';
import { deployOnlyPipeline } from '../helpers/deploy-pipeline';
import { cloneUrl, git, localRepo } from '../helpers/git';
import { appendAudit, verifyAuditChains } from '../../core/stores/audit-store';
import { shardOf } from '../../core/shards';

// Issue 12 item 5: the tamper-evident audit log on the shared platform. Every security-relevant
// action, done for real through the gateway (API and git push, a refused one too), writes its chained row; the chains
// verify untouched and name the first broken link after a row is altered, deleted or two rows are
// swapped behind the application's back (SQL as a superuser, undone afterwards); concurrent
// appends never fork a chain; the listing is for tenant admins (own tenant) and platform admins.

let acme: TenantFixture;
let other: TenantFixture;
/**
 * acme's database (audit rows are tenant-owned: the platform's own database, or under
 * DOTGIT_TEST_SHARD_DATABASES its shard's); `globalDb` holds the tenant directory; `pools` one pool
 * per database URL, for the other tenants' rows.
 */
let db: pg.Pool;
let globalDb: pg.Pool;
const pools = new Map<string, pg.Pool>();
const admin = () => platformInfo().adminToken;

interface Event {
  id: number;
  tenant: string | null;
  actor: string;
  action: string;
  target: string;
  detail: any;
  requestId: string | null;
  at: string;
  shard: number;
  seq: number | null;
  hash: string | null;
}

beforeAll(async () => {
  [acme, other] = await Promise.all([createTenantWithAdmin(), createTenantWithAdmin()]);
  globalDb = await poolOf('global');
  db = await poolOf(acme.tenant);
});

afterAll(async () => {
  await Promise.all([...pools.values()].map((p) => p.end()));
});

/** A pool on the database of a tenant's rows (`global`: the global database). */
async function poolOf(tenant: string): Promise<pg.Pool> {
  const url = tenant === 'global' ? platformInfo().databaseUrl : await tenantDatabaseUrl(tenant);
  if (!pools.has(url)) pools.set(url, new pg.Pool({ connectionString: url, max: 20 }));
  return pools.get(url)!;
}

/** Every event of the caller's listing after `after`, page by page (`limit` each), following `next`. */
async function listAll(token: string, query: string, after = 0, limit = 7): Promise<Event[]> {
  const out: Event[] = [];
  for (let cursor: number | null = after; cursor !== null; ) {
    const page: { status: number; body: { events: Event[]; next: number | null } } = await api('GET', `/api/v1/audit?${query}&after=${cursor}&limit=${limit}`, { token });
    expect(page.status).toBe(200);
    expect(page.body.events.length).toBeLessThanOrEqual(limit);
    out.push(...page.body.events);
    cursor = page.body.next;
  }
  return out;
}

/**
 * The newest audit row id on a tenant's database: listing that tenant after it gives only newer
 * rows (each database allots ids from a block of its own, so another database's may be lower).
 */
async function maxId(tenant = acme.tenant): Promise<number> {
  return Number((await (await poolOf(tenant)).query('SELECT coalesce(max(id), 0) AS m FROM audit_log')).rows[0].m);
}

/** The request id the gateway keeps (well-formed ones are), so each action's row can be found by it. */
const rid = (what: string) => `audit-${what}-${randomBytes(4).toString('hex')}`;

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

test('each security-relevant action writes its chained row, with actor, tenant, request id and target', async () => {
  const before = await maxId();
  const platformBefore = await maxId('dotgit');
  const repo = await createPrivateRepo(acme, 'audited');
  const full = `${acme.tenant}/${repo}`;
  const ids: Record<string, string> = {};
  const call = async (what: string, method: string, path: string, body: unknown, token: string, status: number) => {
    ids[what] = rid(what);
    const r = await api(method, path, { token, body, headers: { 'x-request-id': ids[what] } });
    expect({ what, status: r.status, body: r.body }).toEqual({ what, status, body: expect.anything() });
    return r;
  };
  const member = uniqueName('m');
  await call('user', 'POST', `/api/v1/tenants/${acme.tenant}/users`, { username: member, role: 'member' }, acme.token, 201);
  const tok = await call('token', 'POST', '/api/v1/tokens', { username: member, scopes: ['read'] }, acme.token, 201);
  await call('revoke', 'DELETE', `/api/v1/tokens/${(tok.body as { id: number }).id}`, undefined, acme.token, 204);
  await call('grant', 'PUT', `/api/v1/repos/${full}/collaborators/${member}`, { access: 'write' }, acme.token, 200);
  await call('ungrant', 'DELETE', `/api/v1/repos/${full}/collaborators/${member}`, undefined, acme.token, 204);
  await call('protect', 'PUT', `/api/v1/repos/${full}/protections/release`, { allowForcePush: false, allowDeletion: false }, acme.token, 200);
  await call('unprotect', 'DELETE', `/api/v1/repos/${full}/protections/release`, undefined, acme.token, 204);
  await call('secret', 'PUT', `/api/v1/repos/${full}/secrets/NPM_TOKEN`, { value: 's3cret' }, acme.token, 204);
  await call('unsecret', 'DELETE', `/api/v1/repos/${full}/secrets/NPM_TOKEN`, undefined, acme.token, 204);
  const hook = await call('hook', 'POST', `/api/v1/repos/${full}/webhooks`, { url: 'http://127.0.0.1:9/hook', secret: 'x'.repeat(16), events: ['push'] }, acme.token, 201);
  await call('unhook', 'DELETE', `/api/v1/repos/${full}/webhooks/${(hook.body as { id: number }).id}`, undefined, acme.token, 204);

  // Pushes: a branch created, moved on, rewritten (force) and a branch deleted.
  const url = cloneUrl(acme.tenant, repo, acme.token);
  const work = await localRepo({ '.dotgit/pipeline.yml': deployOnlyPipeline({ gate: { approval: true }, gate2: { approval: true } }) });
  expect((await git(['push', url, 'main', 'main:refs/heads/doomed'], work)).code).toBe(0);
  const first = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
  await git(['commit', '-q', '--allow-empty', '-m', 'two'], work);
  expect((await git(['push', url, 'main'], work)).code).toBe(0);
  const second = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
  await git(['commit', '-q', '--amend', '--allow-empty', '-m', 'two, rewritten'], work);
  expect((await git(['push', '--force', url, 'main'], work)).code).toBe(0);
  const third = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
  expect((await git(['push', url, ':doomed'], work)).code).toBe(0);
  // A force push to a protected branch is refused, and the attempt is on record.
  expect((await api('PUT', `/api/v1/repos/${full}/protections/main`, { token: acme.token, body: { allowForcePush: false, allowDeletion: false } })).status).toBe(200);
  await git(['commit', '-q', '--amend', '--allow-empty', '-m', 'two, rewritten again'], work);
  const attempt = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
  const refused = await git(['push', '--force', url, 'main'], work);
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toContain('rejected refs/heads/main');
  // Tags (annotated, so they peel): moved on to a descendant is an update, to an unrelated commit a
  // force. `ci.skip`: no runs, the deploys below stay the only ones.
  const tagPush = async () => (await git(['push', '--force', '-o', 'ci.skip', url, 'refs/tags/v1'], work)).code;
  await git(['tag', '-a', '-m', 'v1', 'v1', first], work);
  expect(await tagPush()).toBe(0);
  await git(['tag', '-f', '-a', '-m', 'v1 moved on', 'v1', third], work);
  expect(await tagPush()).toBe(0);
  await git(['checkout', '-q', '--orphan', 'elsewhere'], work);
  await git(['commit', '-q', '--allow-empty', '-m', 'unrelated'], work);
  await git(['tag', '-f', '-a', '-m', 'v1 elsewhere', 'v1', 'elsewhere'], work);
  expect(await tagPush()).toBe(0);

  // Deploys: one approved, one rejected.
  const deploy = async (environment: string) => {
    const r = await api<{ id: string }>('POST', `/api/v1/repos/${full}/deploys`, { token: acme.token, body: { ref: 'main', environment } });
    expect(r.status).toBe(202);
    await waitFor(`deploy ${r.body.id} at the gate`, async () => {
      const d = await api<{ status: string }>('GET', `/api/v1/deploys/${encodeURIComponent(r.body.id)}`, { token: acme.token });
      return d.body.status === 'waiting_approval' ? true : undefined;
    });
    return r.body.id;
  };
  const [approveId, rejectId] = await Promise.all([deploy('gate'), deploy('gate2')]);
  await call('approve', 'POST', `/api/v1/deploys/${encodeURIComponent(approveId)}/approve`, { comment: 'ok' }, acme.token, 200);
  await call('reject', 'POST', `/api/v1/deploys/${encodeURIComponent(rejectId)}/reject`, { comment: 'no' }, acme.token, 200);

  // Backup and restore (platform admin; audited in the admin's tenant). The restore of a time
  // before any backup fails at once; the backup is waited for so it cannot overlap later suites'.
  const backup = await call('backup', 'POST', '/api/v1/backups', {}, admin(), 202);
  const restore = await call('restore', 'POST', '/api/v1/restores', { at: '2001-01-01T00:00:00Z', repos: [full], postgres: false }, admin(), 202);
  await waitFor('the backup to end', async () => {
    const l = await api<{ backups: { id: string; status: string }[] }>('GET', '/api/v1/backups', { token: admin() });
    return l.body.backups.some((b) => b.id === (backup.body as { id: string }).id && b.status !== 'running') ? true : undefined;
  }, 240_000);

  // The tenant admin's own listing holds its tenant's rows, each once and in order.
  const mine = await listAll(acme.token, '', before);
  expect(mine.length).toBeGreaterThan(0);
  expect(mine.every((e) => e.tenant === acme.tenant)).toBe(true);
  expect(mine.map((e) => e.id)).toEqual([...new Set(mine.map((e) => e.id))].sort((a, b) => a - b));
  const shard = shardOf(Number((await globalDb.query('SELECT id FROM tenants WHERE name = $1', [acme.tenant])).rows[0].id));
  const expectRow = (what: string, action: string, target: string, detail?: object) => {
    const e = mine.find((x) => x.requestId === ids[what]);
    expect({ what, e }).toEqual({ what, e: expect.objectContaining({ action, target, actor: acme.username, tenant: acme.tenant, shard }) });
    expect(e!.seq).toBeGreaterThan(0);
    expect(e!.hash).toMatch(/^[0-9a-f]{64}$/);
    if (detail) expect(e!.detail).toMatchObject(detail);
  };
  expectRow('user', 'user.create', member, { role: 'member' });
  expectRow('token', 'token.create', member, { scopes: ['read'] });
  expectRow('revoke', 'token.revoke', String((tok.body as { id: number }).id));
  expectRow('grant', 'repo.grant', full, { username: member, access: 'write' });
  expectRow('ungrant', 'repo.revoke', full, { username: member });
  expectRow('protect', 'repo.protect', `${full}:release`, { allowForcePush: false, allowDeletion: false });
  expectRow('unprotect', 'repo.unprotect', `${full}:release`);
  expectRow('secret', 'secret.put', `${full}::NPM_TOKEN`);
  expectRow('unsecret', 'secret.delete', `${full}::NPM_TOKEN`);
  expectRow('hook', 'repo.webhook.create', full, { id: (hook.body as { id: number }).id });
  expectRow('unhook', 'repo.webhook.delete', full);
  expectRow('approve', 'deploy.approve', approveId);
  expectRow('reject', 'deploy.reject', rejectId);
  expect(JSON.stringify(mine)).not.toContain('s3cret');

  // Pushes: one row each, by the pusher, with the gateway's request id and each ref's kind.
  const pushes = mine.filter((e) => e.action === 'repo.push' && e.target === full);
  expect(pushes.map((e) => e.detail.updates.map((u: any) => `${u.ref} ${u.kind}`).sort())).toEqual([
    ['refs/heads/doomed create', 'refs/heads/main create'],
    ['refs/heads/main update'],
    ['refs/heads/main force'],
    ['refs/heads/doomed delete'],
    ['refs/tags/v1 create'],
    ['refs/tags/v1 update'],
    ['refs/tags/v1 force'],
  ]);
  expect(pushes.map((e) => [e.detail.forced, e.detail.deleted])).toEqual([[[], []], [[], []], [['refs/heads/main'], []], [[], ['refs/heads/doomed']], [[], []], [[], []], [['refs/tags/v1'], []]]);
  expect(pushes[2].detail.updates[0]).toMatchObject({ oldSha: second, newSha: third });
  expect(pushes[0].detail.updates.find((u: any) => u.ref === 'refs/heads/main')).toMatchObject({ newSha: first });
  for (const p of pushes) {
    expect(p.actor).toBe(acme.username);
    expect(p.requestId).toEqual(expect.any(String));
  }
  const refusedRows = mine.filter((e) => e.action === 'repo.push.refused' && e.target === full);
  expect(refusedRows).toEqual([expect.objectContaining({ actor: acme.username, requestId: expect.any(String) })]);
  expect(refusedRows[0].detail.updates).toEqual([expect.objectContaining({ ref: 'refs/heads/main', oldSha: third, newSha: attempt })]);
  expect(refusedRows[0].detail.problems).toEqual([expect.stringContaining('rejected refs/heads/main')]);

  // Backup and restore: in the platform admin's tenant, seen by a platform admin.
  const platform = await listAll(admin(), 'tenant=dotgit', platformBefore, 100);
  expect(platform.find((e) => e.requestId === ids.backup)).toMatchObject({ action: 'backup.create', actor: 'admin', target: (backup.body as { id: string }).id });
  expect(platform.find((e) => e.requestId === ids.restore)).toMatchObject({ action: 'restore.create', actor: 'admin', target: (restore.body as { id: string }).id, detail: { repos: [full] } });

  // Every row written meanwhile sits in its tenant's shard, and every chain verifies.
  const rows = await db.query('SELECT tenant_id, shard FROM audit_log WHERE id > $1 AND tenant_id IS NOT NULL', [before]);
  for (const r of rows.rows) expect(r.shard).toBe(shardOf(r.tenant_id));
  const v = await api('GET', '/api/v1/audit/verify', { token: admin() });
  expect(v.status).toBe(200);
  expect(v.body).toMatchObject({ ok: true });
  expect(v.body.firstBroken).toBeUndefined();
  expect(v.body.checked).toBeGreaterThanOrEqual(rows.rowCount ?? 0);
}, 400_000);

test('the listing: tenant admins see their own tenant only, others are refused, pages follow `after`', async () => {
  const before = await maxId();
  const otherBefore = await maxId(other.tenant);
  for (let i = 0; i < 5; i++) {
    expect((await api('POST', '/api/v1/tokens', { token: other.token, body: { scopes: ['read'] } })).status).toBe(201);
    expect((await api('POST', '/api/v1/tokens', { token: acme.token, body: { scopes: ['read'] } })).status).toBe(201);
  }
  // Own tenant by default and by name; pages of 2 add up to the whole, in id order, none twice.
  const paged = await listAll(acme.token, '', before, 2);
  expect(paged.map((e) => e.action)).toEqual(Array(5).fill('token.create'));
  expect(paged.every((e) => e.tenant === acme.tenant)).toBe(true);
  expect(await listAll(acme.token, `tenant=${acme.tenant}`, before, 100)).toEqual(paged);
  const firstPage = await api('GET', `/api/v1/audit?after=${before}&limit=2`, { token: acme.token });
  expect(firstPage.body.next).toBe(firstPage.body.events[1].id);
  const rest = await api('GET', `/api/v1/audit?after=${firstPage.body.next}&limit=100`, { token: acme.token });
  expect(rest.body.events.map((e: Event) => e.id)).toEqual(paged.slice(2).map((e) => e.id));
  expect(rest.body.next).toBeNull();

  // Another tenant's log: 404 to an outsider, whether it exists or not.
  for (const t of [other.tenant, uniqueName('nope')]) {
    const r = await api('GET', `/api/v1/audit?tenant=${t}`, { token: acme.token });
    expect(r.status).toBe(404);
  }
  // A member, or the admin with a token lacking the admin scope: 403.
  const member = uniqueName('m');
  expect((await api('POST', `/api/v1/tenants/${acme.tenant}/users`, { token: acme.token, body: { username: member, role: 'member' } })).status).toBe(201);
  const memberToken = (await api('POST', '/api/v1/tokens', { token: acme.token, body: { username: member, scopes: ['read', 'write', 'admin'] } })).body.token;
  expect((await api('GET', '/api/v1/audit', { token: memberToken })).status).toBe(403);
  const readToken = (await api('POST', '/api/v1/tokens', { token: acme.token, body: { scopes: ['read'] } })).body.token;
  expect((await api('GET', '/api/v1/audit', { token: readToken })).status).toBe(403);
  expect((await api('GET', '/api/v1/audit')).status).toBe(401);
  // Verification is for platform admins.
  expect((await api('GET', '/api/v1/audit/verify', { token: acme.token })).status).toBe(403);
  // Bad paging input: 400 naming the parameter.
  const bad = await api('GET', '/api/v1/audit?after=-1', { token: acme.token });
  expect(bad.status).toBe(400);
  expect(bad.body.error.message).toContain('after');
  expect((await api('GET', '/api/v1/audit?limit=0', { token: acme.token })).status).toBe(400);

  // A platform admin reads any tenant, and all of them at once.
  const theirs = await listAll(admin(), `tenant=${other.tenant}`, otherBefore, 100);
  expect(theirs.map((e) => e.tenant)).toEqual(Array(5).fill(other.tenant));
  const all = await listAll(admin(), '', Math.min(before, otherBefore), 100);
  expect(all.filter((e) => e.tenant === acme.tenant || e.tenant === other.tenant).length).toBeGreaterThanOrEqual(paged.length + theirs.length);
});

describe('tampering done directly in SQL is found, and named', () => {
  /** Runs `fn` as a superuser with the append-only trigger out of the way (session_replication_role), as an attacker with the database would. */
  async function asSuperuser<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await db.connect();
    try {
      await c.query('SET session_replication_role = replica');
      return await fn(c);
    } finally {
      await c.query('RESET session_replication_role').catch(() => undefined);
      c.release();
    }
  }

  async function verifyTenant(t: string) {
    const r = await api('GET', `/api/v1/audit/verify?tenant=${t}`, { token: admin() });
    expect(r.status).toBe(200);
    return r.body;
  }

  /** Two consecutive links of acme's shard chain, whole rows. */
  async function twoLinks() {
    const shard = shardOf(Number((await globalDb.query('SELECT id FROM tenants WHERE name = $1', [acme.tenant])).rows[0].id));
    const r = await db.query(`SELECT * FROM audit_log WHERE shard = $1 AND seq IS NOT NULL ORDER BY seq DESC LIMIT 3`, [shard]);
    expect(r.rows.length).toBe(3);
    return { shard, a: r.rows[2], b: r.rows[1] };
  }

  beforeAll(async () => {
    expect(await verifyTenant(acme.tenant)).toMatchObject({ ok: true });
  });

  test('a row altered', async () => {
    const { shard, a } = await twoLinks();
    await asSuperuser((c) => c.query(`UPDATE audit_log SET target = 'nothing to see here' WHERE id = $1`, [a.id]));
    try {
      const v = await verifyTenant(acme.tenant);
      expect(v).toMatchObject({ ok: false, firstBroken: { shard, seq: Number(a.seq), id: Number(a.id), reason: expect.stringContaining('altered') } });
      // The CLI-facing answer for the whole platform names the same link.
      const all = await api('GET', '/api/v1/audit/verify', { token: admin() });
      expect(all.body.ok).toBe(false);
      expect(all.body.shards.find((s: { shard: number }) => s.shard === shard).firstBroken).toEqual(v.firstBroken);
    } finally {
      await asSuperuser((c) => c.query('UPDATE audit_log SET target = $2 WHERE id = $1', [a.id, a.target]));
    }
    expect(await verifyTenant(acme.tenant)).toMatchObject({ ok: true });
  });

  test('a row deleted', async () => {
    const { shard, a } = await twoLinks();
    await asSuperuser((c) => c.query('DELETE FROM audit_log WHERE id = $1', [a.id]));
    try {
      const v = await verifyTenant(acme.tenant);
      expect(v).toMatchObject({ ok: false, firstBroken: { shard, seq: Number(a.seq), reason: expect.stringContaining('deleted') } });
    } finally {
      await asSuperuser((c) =>
        c.query(
          `INSERT INTO audit_log (id, tenant_id, actor, action, target, detail, request_id, at, seq, prev_hash, hash)
           OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
          [a.id, a.tenant_id, a.actor, a.action, a.target, JSON.stringify(a.detail), a.request_id, a.at, a.seq, a.prev_hash, a.hash],
        ),
      );
    }
    expect(await verifyTenant(acme.tenant)).toMatchObject({ ok: true });
  });

  test('two rows swapped', async () => {
    const { shard, a, b } = await twoLinks();
    const cols = ['tenant_id', 'actor', 'action', 'target', 'detail', 'request_id', 'at', 'prev_hash', 'hash'];
    const put = (c: pg.PoolClient, id: unknown, row: Record<string, unknown>) =>
      c.query(`UPDATE audit_log SET ${cols.map((k, i) => `${k} = $${i + 2}`).join(', ')} WHERE id = $1`, [id, ...cols.map((k) => (k === 'detail' ? JSON.stringify(row[k]) : row[k]))]);
    // Each position now holds the other's row, hash and link included.
    await asSuperuser(async (c) => {
      await put(c, a.id, b);
      await put(c, b.id, a);
    });
    try {
      const v = await verifyTenant(acme.tenant);
      expect(v).toMatchObject({ ok: false, firstBroken: { shard, seq: Number(a.seq), id: Number(a.id), reason: expect.any(String) } });
    } finally {
      await asSuperuser(async (c) => {
        await put(c, a.id, a);
        await put(c, b.id, b);
      });
    }
    expect(await verifyTenant(acme.tenant)).toMatchObject({ ok: true });
  });
});

test('concurrent appends to one chain never fork it: every link follows the one before', async () => {
  const acmeId = Number((await globalDb.query('SELECT id FROM tenants WHERE name = $1', [acme.tenant])).rows[0].id);
  const shard = shardOf(acmeId);
  // 40 appends at once from 20 connections of their own, plus API writes into the same chain.
  const direct = Array.from({ length: 40 }, (_, i) => appendAudit(db, { tenantId: acmeId, actor: 'test', action: 'test.concurrent', target: `t${i}` }));
  const viaApi = Array.from({ length: 10 }, () => api('POST', '/api/v1/tokens', { token: acme.token, body: { scopes: ['read'] } }));
  const [written, answers] = await Promise.all([Promise.all(direct), Promise.all(viaApi)]);
  expect(answers.map((a) => a.status)).toEqual(Array(10).fill(201));
  const seqs = written.map((w) => w.seq).sort((x, y) => x - y);
  expect(new Set(seqs).size).toBe(40);
  const v = await verifyAuditChains(db, [shard]);
  expect(v).toMatchObject({ ok: true });
  expect(v.shards[0].head!.seq).toBeGreaterThanOrEqual(seqs[39]);
});
