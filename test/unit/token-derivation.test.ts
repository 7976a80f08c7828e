import { DerivationError, derivedExpiry } from '../../core/tokens';
import { DEFAULT_AUTH_FAILURE_LIMIT, parseRateLimitConfig } from '../../gateway/rate-limit/policy';

// The token-derivation rule (docs/decisions/0009-token-derivation.md) as pure logic.

const NOW = Date.parse('2026-12-04T12:00:00Z');
const at = (s: number) => new Date(NOW + s * 1000);

function broken(fn: () => unknown): { rule: string; message: string } {
  try {
    fn();
  } catch (err) {
    if (err instanceof DerivationError) return { rule: err.rule, message: err.message };
    throw err;
  }
  throw new Error('the rule was not broken');
}

test('a read-only credential derives nothing, whatever it asks for', () => {
  for (const asked of [null, at(10)]) {
    expect(broken(() => derivedExpiry({ scopes: ['read'], expiresAt: NOW + 90_000 }, ['read'], asked))).toEqual({ rule: 'scope', message: expect.stringMatching(/read-only token cannot create tokens/) });
  }
  expect(broken(() => derivedExpiry({ scopes: [], expiresAt: null }, ['read'], null)).rule).toBe('scope');
});

test('scopes stay within the parent\'s (admin ⊃ write ⊃ read)', () => {
  expect(broken(() => derivedExpiry({ scopes: ['read', 'write'], expiresAt: null }, ['admin'], null)).rule).toBe('scope');
  expect(derivedExpiry({ scopes: ['admin'], expiresAt: null }, ['read', 'write'], null)).toBeNull();
  expect(derivedExpiry({ scopes: ['write'], expiresAt: null }, ['read'], at(60))).toEqual(at(60));
});

test('a child never outlives its parent and defaults to the parent\'s expiry', () => {
  const parent = { scopes: ['read', 'write'] as const, expiresAt: NOW + 90_000 };
  expect(derivedExpiry({ ...parent, scopes: [...parent.scopes] }, ['read'], null)).toEqual(at(90));
  expect(derivedExpiry({ ...parent, scopes: [...parent.scopes] }, ['read'], at(30))).toEqual(at(30));
  expect(derivedExpiry({ ...parent, scopes: [...parent.scopes] }, ['read'], at(90))).toEqual(at(90));
  expect(broken(() => derivedExpiry({ ...parent, scopes: [...parent.scopes] }, ['read'], at(91)))).toEqual({ rule: 'expiry', message: expect.stringMatching(/not be later than 2026-12-04T12:01:30.000Z/) });
  // A parent without expiry leaves the choice to the caller, as before.
  expect(derivedExpiry({ scopes: ['write'], expiresAt: null }, ['write'], null)).toBeNull();
});

test('failed authentications per address: a default, and configurable', () => {
  expect(parseRateLimitConfig({}).authFailures).toEqual(DEFAULT_AUTH_FAILURE_LIMIT);
  expect(parseRateLimitConfig({ 'auth-failure': { window: { limit: 5, windowMs: 1000 } } }).authFailures).toEqual({ limit: 5, windowMs: 1000 });
  expect(() => parseRateLimitConfig({ 'auth-failure': { window: { limit: 0, windowMs: 1000 } } })).toThrow();
});
