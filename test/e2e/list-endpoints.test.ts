import { runDotgit } from '../helpers/cli';
import { api, createTenantWithAdmin, type TenantFixture } from '../helpers/api-client';

// `GET /api/v1/repos` and `GET /api/v1/tokens` (issue 15) and their commands, `dotgit repo list` and
// `dotgit token list`, against the running platform.

/** The `dotgit` command; without a token it runs with no credentials at all. */
const dotgit = (args: string[], token?: string) => runDotgit(args, token);

async function repo(owner: TenantFixture, name: string, visibility: 'public' | 'private'): Promise<void> {
  const r = await api('POST', '/api/v1/repos', { token: owner.token, body: { owner: owner.tenant, name, visibility } });
  if (r.status !== 201) throw new Error(`repo: ${r.status} ${r.text}`);
}

const names = (body: { repos: { owner: string; name: string }[] }) => body.repos.map((r) => `${r.owner}/${r.name}`);

let a: TenantFixture;
let b: TenantFixture;

beforeAll(async () => {
  [a, b] = await Promise.all([createTenantWithAdmin(), createTenantWithAdmin()]);
  // a: granted (private, b's user may read it), open (public), closed (private, b may not).
  await repo(a, 'granted', 'private');
  await repo(a, 'open', 'public');
  await repo(a, 'closed', 'private');
  await repo(b, 'own', 'private');
  const grant = await api('PUT', `/api/v1/repos/${a.tenant}/granted/collaborators/${b.username}`, { token: a.token, body: { access: 'read' } });
  expect(grant.status).toBe(200);
}, 60_000);

test('GET /repos lists what the caller may read: its tenant, grants, public ones; nothing hidden leaks', async () => {
  const mine = await api('GET', `/api/v1/repos?owner=${a.tenant}`, { token: a.token });
  expect(mine.status).toBe(200);
  expect(names(mine.body)).toEqual([`${a.tenant}/granted`, `${a.tenant}/open`, `${a.tenant}/closed`]);
  expect(mine.body.repos[0]).toMatchObject({ visibility: 'private', defaultBranch: 'main', cloneUrl: expect.stringMatching(new RegExp(`/${a.tenant}/granted\\.git$`)) });
  expect(mine.body.next).toBeNull();

  // Another tenant's user: the grant and the public one, never `closed`.
  const other = await api('GET', `/api/v1/repos?owner=${a.tenant}`, { token: b.token });
  expect(names(other.body)).toEqual([`${a.tenant}/granted`, `${a.tenant}/open`]);
  // Without owner: its own tenant's too (and whatever else is public on the platform).
  const all = names((await api('GET', '/api/v1/repos?limit=1000', { token: b.token })).body);
  expect(all).toEqual(expect.arrayContaining([`${b.tenant}/own`, `${a.tenant}/granted`, `${a.tenant}/open`]));
  expect(all).not.toContain(`${a.tenant}/closed`);

  // Anonymous: public ones only; an unknown tenant lists none (no 404: names cannot be probed).
  expect(names((await api('GET', `/api/v1/repos?owner=${a.tenant}`)).body)).toEqual([`${a.tenant}/open`]);
  const unknown = await api('GET', '/api/v1/repos?owner=no-such-tenant-xyz', { token: b.token });
  expect(unknown.status).toBe(200);
  expect(unknown.body).toEqual({ repos: [], next: null });
});

test('GET /repos pages by id with after/limit and refuses a bad page with 400 naming the parameter', async () => {
  const first = await api('GET', `/api/v1/repos?owner=${a.tenant}&limit=2`, { token: a.token });
  expect(names(first.body)).toEqual([`${a.tenant}/granted`, `${a.tenant}/open`]);
  expect(typeof first.body.next).toBe('number');
  const second = await api('GET', `/api/v1/repos?owner=${a.tenant}&limit=2&after=${first.body.next}`, { token: a.token });
  expect(names(second.body)).toEqual([`${a.tenant}/closed`]);
  expect(second.body.next).toBeNull();

  for (const [q, field] of [['limit=0', 'limit'], ['limit=abc', 'limit'], ['limit=1001', 'limit'], ['after=-1', 'after'], ['owner=..', 'owner']]) {
    const bad = await api('GET', `/api/v1/repos?${q}`, { token: a.token });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain(field);
  }
});

test('GET /tokens lists the caller’s own live tokens, never a secret; a revoked one is gone', async () => {
  const made = await api('POST', '/api/v1/tokens', { token: a.token, body: { scopes: ['read'], expiresAt: '2099-01-01T00:00:00Z' } });
  expect(made.status).toBe(201);
  const reader = made.body.token as string;

  const listed = await api('GET', '/api/v1/tokens', { token: reader });
  expect(listed.status).toBe(200);
  expect(listed.body.next).toBeNull();
  const tokens = listed.body.tokens as { id: number; scopes: string[]; expiresAt: string | null; parentTokenId: number | null; current: boolean; createdAt: string }[];
  expect(tokens).toHaveLength(2); // the fixture's token (made by the platform admin) and the derived one
  const derived = tokens.find((t) => t.id === made.body.id)!;
  expect(derived).toMatchObject({ scopes: ['read'], expiresAt: '2099-01-01T00:00:00.000Z', current: true });
  expect(derived.parentTokenId).toBe(tokens.find((t) => t.id !== made.body.id)!.id);
  expect(Object.keys(derived).sort()).toEqual(['createdAt', 'current', 'expiresAt', 'id', 'parentTokenId', 'scopes']);
  expect(listed.text).not.toContain(reader);
  expect(listed.text).not.toContain(a.token);

  // Only one's own: b's list does not hold a's tokens.
  const theirs = (await api('GET', '/api/v1/tokens', { token: b.token })).body.tokens as { id: number }[];
  expect(theirs.map((t) => t.id)).not.toContain(made.body.id);

  expect((await api('DELETE', `/api/v1/tokens/${made.body.id}`, { token: a.token })).status).toBe(204);
  const after = (await api('GET', '/api/v1/tokens', { token: a.token })).body.tokens as { id: number; current: boolean }[];
  expect(after.map((t) => t.id)).not.toContain(made.body.id);
  expect(after.filter((t) => t.current)).toHaveLength(1);

  expect((await api('GET', '/api/v1/tokens')).status).toBe(401);
});

test('dotgit repo list and token list: lines, --json, exit codes', async () => {
  const human = await dotgit(['repo', 'list', a.tenant], b.token);
  expect(human.code).toBe(0);
  expect(human.stdout.trim().split('\n').map((l) => l.split('\t')[0])).toEqual([`${a.tenant}/granted`, `${a.tenant}/open`]);

  const json = await dotgit(['repo', 'list', a.tenant, '--json', '--limit', '1'], a.token);
  expect(json.code).toBe(0);
  const page = JSON.parse(json.stdout);
  expect(names(page)).toEqual([`${a.tenant}/granted`]);
  expect(json.stderr).toBe('');
  const rest = JSON.parse((await dotgit(['repo', 'list', a.tenant, '--json', '--after', String(page.next)], a.token)).stdout);
  expect(names(rest)).toEqual([`${a.tenant}/open`, `${a.tenant}/closed`]);

  const anonymous = await dotgit(['repo', 'list', a.tenant]);
  expect(anonymous.code).toBe(0);
  expect(anonymous.stdout).toContain(`${a.tenant}/open`);
  expect(anonymous.stdout).not.toContain('granted');

  const tokens = await dotgit(['token', 'list', '--json'], b.token);
  expect(tokens.code).toBe(0);
  const listed = JSON.parse(tokens.stdout);
  expect(listed.tokens).toEqual([expect.objectContaining({ scopes: ['read', 'write', 'admin'], current: true })]);
  expect(tokens.stdout).not.toContain(b.token);
  const tokenLines = await dotgit(['token', 'list'], b.token);
  expect(tokenLines.stdout).toMatch(/^\d+\tread,write,admin\t\S+\tnever\t\(this token\)\n$/);

  expect((await dotgit(['repo', 'list', '--limit', 'many'], a.token)).code).toBe(2);
  const signedOut = await dotgit(['token', 'list']);
  expect(signedOut.code).toBe(4);
  expect(signedOut.stderr).toContain('not signed in: run `dotgit login`');
  expect(tokenLines.stderr).not.toContain('not signed in');
  expect((await dotgit(['token', 'list', '--help'])).code).toBe(0);
});
