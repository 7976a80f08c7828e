import { repoAccess, type Principal } from '../../core/principal';
import { isValidName } from '../../core/names';
import { requestIdFrom } from '../../gateway/request-id';
import { upstreamFor } from '../../gateway/upstream-for';

const user = (over: Partial<Principal> = {}): Principal => ({
  userId: 1, username: 'u', tenantId: 10, tenantName: 'acme', role: 'member', platformAdmin: false, scopes: ['read', 'write'], tokenId: 1, ...over,
});
const priv = { tenantId: 10, visibility: 'private' as const };
const pub = { tenantId: 10, visibility: 'public' as const };

test('members write their tenant repositories; token scopes cap the role', () => {
  expect(repoAccess(user(), priv)).toBe('write');
  expect(repoAccess(user({ scopes: ['read'] }), priv)).toBe('read');
  expect(repoAccess(user({ role: 'admin', scopes: ['read', 'write', 'admin'] }), priv)).toBe('admin');
  expect(repoAccess(user({ role: 'reader' }), priv)).toBe('read');
});

test('deny by default: other tenants and anonymous see nothing private; public is read-only', () => {
  expect(repoAccess(user({ tenantId: 99 }), priv)).toBe('none');
  expect(repoAccess(undefined, priv)).toBe('none');
  expect(repoAccess(undefined, pub)).toBe('read');
  expect(repoAccess(user({ tenantId: 99 }), pub)).toBe('read');
  expect(repoAccess(user({ scopes: [] }), priv)).toBe('none');
});

test('explicit grants raise access for outsiders, still capped by scopes', () => {
  expect(repoAccess(user({ tenantId: 99 }), priv, 'write')).toBe('write');
  expect(repoAccess(user({ tenantId: 99, scopes: ['read'] }), priv, 'admin')).toBe('read');
});

test('names: the CONTRACT pattern, no traversal, no double .git', () => {
  for (const ok of ['web', 'a', 'A.b_c-d', 'x'.repeat(100)]) expect(isValidName(ok)).toBe(true);
  for (const bad of ['', '..', '.hidden', '-rf', 'a/b', '/abs', 'a..b', 'x'.repeat(101), 'web.git', 'wеb' /* cyrillic е */, '%2e%2e', 'a b']) {
    expect(isValidName(bad)).toBe(false);
  }
});

test('request ids: well-formed ones kept, others replaced', () => {
  expect(requestIdFrom('abc-12345678')).toBe('abc-12345678');
  expect(requestIdFrom('bad id with spaces')).not.toBe('bad id with spaces');
  expect(requestIdFrom('x'.repeat(500))).toHaveLength(36);
  expect(requestIdFrom(undefined)).toMatch(/^[0-9a-f-]{36}$/);
});

test('routing by path prefix', () => {
  expect(upstreamFor('/api/v1/repos')).toBe('api');
  expect(upstreamFor('/acme/web.git/info/refs')).toBe('git');
  expect(upstreamFor('/acme/web.git/git-upload-pack')).toBe('git');
  expect(upstreamFor('/internal/repos')).toBeUndefined();
  expect(upstreamFor('/apix')).toBeUndefined();
});
