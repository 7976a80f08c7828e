import type { Request } from 'express';
import { checkCsrf, sessionIdFrom } from '../../gateway/console-session';

// The console session's pure parts (ADR 0032): finding the cookie, and the CSRF rules for writes.

const ID = 'a'.repeat(43);
const req = (method: string, headers: Record<string, string>): Request => ({ method, header: (n: string) => headers[n.toLowerCase()] }) as unknown as Request;

test('the session cookie is found among others; malformed values are ignored', () => {
  expect(sessionIdFrom(`theme=dark; dotgit_session=${ID}; other=1`)).toBe(ID);
  expect(sessionIdFrom(`dotgit_session=${ID}`)).toBe(ID);
  expect(sessionIdFrom('dotgit_session=short')).toBeUndefined();
  expect(sessionIdFrom(`dotgit_session=${ID}%3Cscript`)).toBeUndefined();
  expect(sessionIdFrom(`xdotgit_session=${ID}`)).toBeUndefined();
  expect(sessionIdFrom(undefined)).toBeUndefined();
});

test('reads pass; a write needs our own origin and the session\'s CSRF token', () => {
  const host = { host: '127.0.0.1:8080' };
  expect(() => checkCsrf(req('GET', { ...host, origin: 'http://evil.example' }), 'tok')).not.toThrow();
  expect(() => checkCsrf(req('POST', { ...host, origin: 'http://127.0.0.1:8080', 'x-csrf-token': 'tok' }), 'tok')).not.toThrow();
  // Without Origin (some clients), the token still decides.
  expect(() => checkCsrf(req('DELETE', { ...host, 'x-csrf-token': 'tok' }), 'tok')).not.toThrow();
  expect(() => checkCsrf(req('POST', { ...host, origin: 'http://127.0.0.1:8080' }), 'tok')).toThrow(/x-csrf-token/);
  expect(() => checkCsrf(req('POST', { ...host, origin: 'http://127.0.0.1:8080', 'x-csrf-token': 'tok2' }), 'tok')).toThrow(/x-csrf-token/);
  // Another port of the same host is same-site for cookies, but not our origin.
  expect(() => checkCsrf(req('POST', { ...host, origin: 'http://127.0.0.1:9999', 'x-csrf-token': 'tok' }), 'tok')).toThrow(/cross-origin/);
  expect(() => checkCsrf(req('PUT', { ...host, 'sec-fetch-site': 'same-site', 'x-csrf-token': 'tok' }), 'tok')).toThrow(/cross-origin/);
  expect(() => checkCsrf(req('POST', { ...host, origin: 'null', 'x-csrf-token': 'tok' }), 'tok')).toThrow(/cross-origin/);
});
