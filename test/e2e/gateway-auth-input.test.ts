import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, type TenantFixture } from '../helpers/api-client';

// Issue 10, defects 5 and part of 9: hostile credentials at the gateway get a clean 4xx naming the
// problem — in OAuth's own error shape (RFC 6749 §5.2) at /oauth/token — never a 500, and a
// malformed Authorization header is refused rather than read loosely.

let t: TenantFixture;
const gw = () => platformInfo().gatewayUrl;

beforeAll(async () => {
  t = await createTenantWithAdmin();
});

async function oauth(init: { headers?: Record<string, string>; body: string }) {
  const res = await fetch(`${gw()}/oauth/token`, { method: 'POST', headers: init.headers, body: init.body });
  const text = await res.text();
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, body, cacheControl: res.headers.get('cache-control') };
}

function expectOAuthError(r: { status: number; body: any }, status: number, error: string, description: RegExp) {
  expect({ status: r.status, error: r.body?.error }).toEqual({ status, error });
  expect(r.body.error_description).toMatch(description);
  expect(Object.keys(r.body).sort()).toEqual(['error', 'error_description']);
}

const basic = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`;
const form = { 'content-type': 'application/x-www-form-urlencoded' };
const json = { 'content-type': 'application/json' };

test('/oauth/token: a bad %-escape in HTTP Basic credentials is a 400 invalid_request', async () => {
  for (const creds of [`%zz:${t.token}`, `${t.username}:%E0%A4%A`, '%:x']) {
    const r = await oauth({ headers: { ...form, authorization: basic(creds) }, body: 'grant_type=client_credentials' });
    expectOAuthError(r, 400, 'invalid_request', /percent-encod/);
  }
});

test('/oauth/token: a non-string client_id or client_secret is a 400 invalid_request naming the field', async () => {
  for (const [field, value] of [['client_secret', { a: 1 }], ['client_secret', ['x', 'y']], ['client_secret', 42], ['client_id', true]] as const) {
    const body = { grant_type: 'client_credentials', client_id: t.username, client_secret: t.token, [field]: value };
    const r = await oauth({ headers: json, body: JSON.stringify(body) });
    expectOAuthError(r, 400, 'invalid_request', new RegExp(`${field} must be a string`));
  }
  // A repeated form field is an array too.
  const r = await oauth({ headers: form, body: `grant_type=client_credentials&client_id=${t.username}&client_secret=a&client_secret=b` });
  expectOAuthError(r, 400, 'invalid_request', /client_secret must be a string/);
  // And a non-string grant_type or scope.
  const g = await oauth({ headers: json, body: JSON.stringify({ grant_type: ['client_credentials'], client_id: t.username, client_secret: t.token }) });
  expectOAuthError(g, 400, 'invalid_request', /grant_type must be a string/);
  const s = await oauth({ headers: json, body: JSON.stringify({ grant_type: 'client_credentials', client_id: t.username, client_secret: t.token, scope: 7 }) });
  expectOAuthError(s, 400, 'invalid_request', /scope must be a string/);
});

test('/oauth/token: malformed JSON and a 20 kB body are clean 4xx answers in the OAuth shape', async () => {
  const bad = await oauth({ headers: json, body: '{"grant_type": "client_credentials",' });
  expectOAuthError(bad, 400, 'invalid_request', /not valid JSON/);
  expect(bad.cacheControl).toBe('no-store');
  const big = await oauth({ headers: json, body: JSON.stringify({ grant_type: 'client_credentials', pad: 'x'.repeat(20_000) }) });
  expectOAuthError(big, 413, 'invalid_request', /larger than 16 KiB/);
  const bigForm = await oauth({ headers: form, body: `grant_type=client_credentials&pad=${'x'.repeat(20_000)}` });
  expectOAuthError(bigForm, 413, 'invalid_request', /larger than 16 KiB/);
  // The endpoint still works afterwards.
  const ok = await oauth({ headers: form, body: new URLSearchParams({ grant_type: 'client_credentials', client_id: t.username, client_secret: t.token }).toString() });
  expect(ok.status).toBe(200);
  expect(typeof ok.body.access_token).toBe('string');
});

test('a malformed Authorization header is refused with 401 and a message, whatever follows a valid token', async () => {
  const path = `/api/v1/repos/${t.tenant}/none`;
  expect((await api('GET', path, { token: t.token })).status).toBe(404); // the token itself is fine
  for (const value of [`Bearer ${t.token} junk`, `Bearer ${t.token} ${t.token}`, `Bearer ${t.token},x`, `Bearer ${t.token}\tjunk`, 'Bearer', `Basic ${Buffer.from(`x:${t.token}`).toString('base64')} junk`, `Basic ${Buffer.from(`x:${t.token}`).toString('base64')}!`]) {
    const res = await api('GET', path, { headers: { authorization: value } });
    expect({ value, status: res.status }).toEqual({ value, status: 401 });
    expect((res.body as any).error.message).toMatch(/malformed Authorization header/);
  }
  // Git's own form (Basic, any user name, token as password) still works, and so do extra spaces
  // between scheme and credentials, which RFC 9110 allows.
  expect((await api('GET', path, { headers: { authorization: `Basic ${Buffer.from(`x:${t.token}`).toString('base64')}` } })).status).toBe(404);
  expect((await api('GET', path, { headers: { authorization: `Bearer   ${t.token}` } })).status).toBe(404);
});
