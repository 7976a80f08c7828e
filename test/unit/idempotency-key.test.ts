import { normalizeKey, principalKey, requestFingerprint, storableStatus } from '../../api/idempotency';
import type { Principal } from '../../core/principal';

// The pure parts of Idempotency-Key handling: which answers are kept, what makes a request "the
// same", and whose key it is.

const principal = (over: Partial<Principal> = {}): Principal => ({ userId: 7, username: 'ann', tenantId: 1, tenantName: 'acme', role: 'admin', platformAdmin: false, scopes: ['write', 'read'], tokenId: 9, ...over });

test('final answers are kept (2xx, 4xx); 5xx, 408 and 429 are not', () => {
  for (const s of [200, 201, 202, 204, 400, 403, 404, 409, 422]) expect(storableStatus(s)).toBe(true);
  for (const s of [408, 429, 500, 502, 503, 504, 301, 100]) expect(storableStatus(s)).toBe(false);
});

test('a quoted key (the draft form) and the bare token are the same key', () => {
  expect(normalizeKey('"abc-1"')).toBe('abc-1');
  expect(normalizeKey('abc-1')).toBe('abc-1');
  expect(normalizeKey('"')).toBe('"');
});

test('the fingerprint covers method, path with query, and the body bytes', () => {
  const base = requestFingerprint('POST', '/api/v1/tenants', Buffer.from('{"name":"a"}'));
  expect(requestFingerprint('POST', '/api/v1/tenants', Buffer.from('{"name":"a"}'))).toBe(base);
  expect(requestFingerprint('POST', '/api/v1/tenants', Buffer.from('{"name":"b"}'))).not.toBe(base);
  expect(requestFingerprint('POST', '/api/v1/tenants?x=1', Buffer.from('{"name":"a"}'))).not.toBe(base);
  expect(requestFingerprint('POST', '/api/v1/repos', Buffer.from('{"name":"a"}'))).not.toBe(base);
  expect(requestFingerprint('POST', '/api/v1/runs/x/cancel', undefined)).toBe(requestFingerprint('POST', '/api/v1/runs/x/cancel', Buffer.alloc(0)));
});

test('a key belongs to one token of one user with its scopes', () => {
  const p = principalKey(principal());
  expect(principalKey(principal({ scopes: ['read', 'write'] }))).toBe(p);
  expect(principalKey(principal({ tokenId: 10 }))).not.toBe(p);
  expect(principalKey(principal({ userId: 8 }))).not.toBe(p);
  // Two JWTs of one user (no token id) with other scopes do not share answers.
  expect(principalKey(principal({ tokenId: 0, scopes: ['read'] }))).not.toBe(principalKey(principal({ tokenId: 0, scopes: ['admin'] })));
});
