import { uniqueName } from '../../helpers/api-client';
import type { Ctx, HttpCase, Req } from './types';

// Hostile JSON bodies for every write endpoint of the API: wrong shapes, wrong types, prototype
// keys, NUL and control characters, confusables, numbers as strings, negative and huge numbers.
// Each must be a 4xx whose message names the field (or the body) at fault.

interface Endpoint {
  id: string;
  method: string;
  path: (c: Ctx) => string;
  token: (c: Ctx) => string;
  /** A valid body (names fresh per call); hostile variants are built from it. */
  base: () => Record<string, unknown>;
  /** What a message about a missing/invalid body must name: the fields it needs. */
  fields: RegExp;
  /** The first field it needs (hostile values go there). */
  first: string;
}

const repoPath = (c: Ctx) => `/api/v1/repos/${c.t.tenant}/${c.repo}`;

const ENDPOINTS: Endpoint[] = [
  { id: 'tenant', method: 'POST', path: () => '/api/v1/tenants', token: (c) => c.admin, base: () => ({ name: uniqueName('h') }), fields: /\bname\b/, first: 'name' },
  { id: 'user', method: 'POST', path: (c) => `/api/v1/tenants/${c.t.tenant}/users`, token: (c) => c.t.token, base: () => ({ username: uniqueName('h'), role: 'member' }), fields: /username|role/, first: 'username' },
  { id: 'token', method: 'POST', path: () => '/api/v1/tokens', token: (c) => c.t.token, base: () => ({ scopes: ['read'], expiresAt: new Date(Date.now() + 3_600_000).toISOString() }), fields: /scopes|expiresAt|username/, first: 'scopes' },
  { id: 'repo', method: 'POST', path: () => '/api/v1/repos', token: (c) => c.t.token, base: () => ({ name: uniqueName('h'), visibility: 'private' }), fields: /owner|name|visibility/, first: 'name' },
  { id: 'secret', method: 'PUT', path: (c) => `${repoPath(c)}/secrets/HOSTILE_SECRET`, token: (c) => c.t.token, base: () => ({ value: 'v' }), fields: /value|environment/, first: 'value' },
  { id: 'protection', method: 'PUT', path: (c) => `${repoPath(c)}/protections/hostile-branch`, token: (c) => c.t.token, base: () => ({ allowForcePush: false, allowDeletion: false }), fields: /allowForcePush|allowDeletion|pushers/, first: 'allowForcePush' },
  { id: 'webhook', method: 'POST', path: (c) => `${repoPath(c)}/webhooks`, token: (c) => c.t.token, base: () => ({ url: 'http://127.0.0.1:9/hook', secret: 's3cret', events: ['push'] }), fields: /url|secret|events/, first: 'url' },
  { id: 'deploy', method: 'POST', path: (c) => `${repoPath(c)}/deploys`, token: (c) => c.t.token, base: () => ({ ref: 'main', environment: 'production' }), fields: /ref|environment/, first: 'environment' },
  { id: 'run', method: 'POST', path: (c) => `${repoPath(c)}/runs`, token: (c) => c.t.token, base: () => ({ ref: 'main' }), fields: /\bref\b/, first: 'ref' },
];

/** The body as sent: objects as JSON, strings verbatim (for what JSON.stringify cannot write: 1e400, bad escapes). */
function req(c: Ctx, e: Endpoint, body: unknown, extra: Array<[string, string]> = []): Req {
  const withOwner = e.id === 'repo' && body && typeof body === 'object' && !Array.isArray(body) && !('owner' in body) ? { owner: c.t.tenant, ...body } : body;
  return {
    method: e.method,
    path: e.path(c),
    headers: [['Authorization', `Bearer ${e.token(c)}`], ...(typeof withOwner === 'string' ? ([['Content-Type', 'application/json']] as Array<[string, string]>) : []), ...extra],
    body: withOwner,
  };
}

const JSON_PROBLEM = /request body is not valid JSON/;
const INVALID = /^invalid_input$/;
const deepArray = (n: number) => '['.repeat(n) + ']'.repeat(n);

export function apiJsonCases(c: Ctx): HttpCase[] {
  const cases: HttpCase[] = [];
  const add = (e: Endpoint, name: string, body: unknown, message: RegExp, status?: number | number[], code?: RegExp) =>
    cases.push({ kind: 'api-json', name: `${e.id}: ${name}`, req: req(c, e, body), expect: { shape: 'api', message, status, code } });
  const bodyOrFields = (e: Endpoint) => new RegExp(`JSON object|body|${e.fields.source}`);

  for (const e of ENDPOINTS) {
    // Shapes that are not an object.
    add(e, 'array for the object', [], bodyOrFields(e), 400);
    add(e, 'array of the valid object', [e.base()], bodyOrFields(e), 400);
    // Valid JSON that is no object says so (not "is not valid JSON"); the code is CONTRACT's, not body-parser's type.
    add(e, 'JSON string', '"hello"', /must be a JSON object, not a string/, 400, INVALID);
    add(e, 'JSON number', '42', /must be a JSON object, not a number/, 400, INVALID);
    add(e, 'JSON null', 'null', /must be a JSON object, not null/, 400, INVALID);
    add(e, 'malformed JSON (cut off)', '{"a": ', JSON_PROBLEM, 400, INVALID);
    add(e, 'malformed JSON (single quotes)', "{'a': 1}", JSON_PROBLEM, 400, INVALID);
    add(e, 'bad \\u escape', '{"a": "\\uZZZZ"}', JSON_PROBLEM, 400, INVALID);
    add(e, 'trailing garbage after the object', `${JSON.stringify(e.base())} trailing`, JSON_PROBLEM, 400, INVALID);
    add(e, 'deep nesting (60 000 levels) in a field', `{"${e.first}": ${deepArray(60_000)}}`, bodyOrFields(e), 400);
    // Only where a field is required: a polluted prototype would make the body look complete.
    if (e.id !== 'protection') {
      add(e, '__proto__ carrying the valid fields', `{"__proto__": ${JSON.stringify(e.base())}}`, bodyOrFields(e), 400);
      add(e, 'constructor.prototype carrying the valid fields', { constructor: { prototype: e.base() } }, bodyOrFields(e), 400);
    }
    add(e, 'over the 1 MiB body limit', { ...e.base(), pad: 'x'.repeat(1024 * 1024 + 10) }, /limited to \d+ bytes|too large/i, 413);
  }

  const [tenant, user, token, repo, secret, protection, webhook, deploy, run] = ENDPOINTS;

  // Tenants and users: wrong types and hostile characters in the name fields.
  for (const [name, v] of [['number', 42], ['negative number', -1], ['huge number', '1e400'], ['boolean', true], ['null', null], ['object', { $ne: null }], ['array', ['a']], ['900 kB string', 'x'.repeat(900_000)]] as const) {
    const value = v === '1e400' ? undefined : v;
    if (v === '1e400') {
      add(tenant, `name as ${name}`, '{"name": 1e400}', /\bname\b/, 400);
      add(user, `username as ${name}`, '{"username": 1e400, "role": "member"}', /username/, 400);
    } else {
      add(tenant, `name as ${name}`, { name: value }, /\bname\b/, 400);
      add(user, `username as ${name}`, { username: value, role: 'member' }, /username/, 400);
    }
  }
  for (const [name, v] of [['number', 1], ['array', ['admin']], ['upper case', 'ADMIN'], ['Cyrillic a (confusable)', 'аdmin'], ['NUL suffix', 'admin\u0000'], ['trailing newline', 'admin\n'], ['object', { toString: 'admin' }], ['"__proto__"', '__proto__'], ['"constructor"', 'constructor']] as const) {
    add(user, `role as ${name}`, { username: uniqueName('h'), role: v }, /\brole\b/, 400);
  }

  // Tokens: scopes and expiry.
  for (const [name, v] of [['a string', 'read'], ['empty array', []], ['numbers', [1]], ['nested array', [['read']]], ['NUL in scope', ['read\u0000']], ['object', { 0: 'read' }], ['null', null], ['unknown scope', ['root']], ['"__proto__"', ['__proto__']], ['Cyrillic e in "read"', ['rеad']]] as const) {
    add(token, `scopes as ${name}`, { scopes: v }, /scopes/, 400);
  }
  for (const [name, v] of [['not a date', 'yesterday'], ['negative number', -1], ['zero', 0], ['in the past', '1970-01-01T00:00:00Z'], ['object', {}], ['array', ['2999-01-01']], ['boolean', true], ['NUL inside', '2999-01-01\u0000'], ['year 300000', '+300000-01-01T00:00:00Z']] as const) {
    add(token, `expiresAt as ${name}`, { scopes: ['read'], expiresAt: v }, /expiresAt/, 400);
  }
  add(token, 'expiresAt as 1e400', '{"scopes": ["read"], "expiresAt": 1e400}', /expiresAt/, 400);
  add(token, 'username as a number', { scopes: ['read'], username: 7 }, /username/, 400);

  // Repositories: owner and visibility (names are in names.ts).
  for (const [name, v] of [['number', 1], ['object', { name: 'x' }], ['NUL inside', `${c.t.tenant}\u0000`], ['array', [c.t.tenant]]] as const) {
    add(repo, `owner as ${name}`, { owner: v, name: uniqueName('h'), visibility: 'private' }, /owner/, 400);
  }
  for (const [name, v] of [['unknown word', 'secret'], ['number', 1], ['upper case', 'PUBLIC'], ['array', ['public']], ['NUL suffix', 'public\u0000'], ['Cyrillic o (confusable)', 'publiс']] as const) {
    add(repo, `visibility as ${name}`, { name: uniqueName('h'), visibility: v }, /visibility/, 400);
  }

  // Secrets.
  for (const [name, v] of [['number', 1], ['null', null], ['array', ['v']], ['object', { value: 'v' }], ['NUL inside', 'a\u0000b'], ['boolean', false]] as const) {
    add(secret, `value as ${name}`, { value: v }, /value/, 400);
  }
  add(secret, 'value over the size limit', { value: 'x'.repeat(200 * 1024) }, /value/, 400);
  for (const [name, v] of [['traversal', '../prod'], ['number', 5], ['space inside', 'pro d'], ['65 chars', 'e'.repeat(65)], ['NUL inside', 'prod\u0000']] as const) {
    add(secret, `environment as ${name}`, { value: 'v', environment: v }, /environment/, 400);
  }

  // Branch protections.
  for (const [name, v] of [['string "true"', 'true'], ['number 1', 1], ['null', null], ['array', [true]], ['object', {}]] as const) {
    add(protection, `allowForcePush as ${name}`, { allowForcePush: v, allowDeletion: false }, /allowForcePush/, 400);
  }
  for (const [name, v] of [['a string', 'alice'], ['numbers', [1]], ['objects', [{}]], ['traversal', ['../x']], ['NUL in a name', ['al\u0000ice']]] as const) {
    add(protection, `pushers as ${name}`, { allowForcePush: false, allowDeletion: false, pushers: v }, /pushers/, 400);
  }

  // Webhooks: url (SSRF), secret, events.
  for (const [name, v] of [['number', 1], ['not a URL', 'not a url'], ['javascript:', 'javascript:alert(1)'], ['file:', 'file:///etc/passwd'], ['metadata address', 'http://169.254.169.254/latest/meta-data'], ['private address', 'http://10.0.0.1/hook'], ['IPv6 loopback', 'http://[::1]/hook'], ['NUL in host', 'http://exa\u0000mple.com/'], ['gopher:', 'gopher://example.com/']] as const) {
    add(webhook, `url as ${name}`, { url: v, secret: 's', events: ['push'] }, /url|URL|address|scheme|http/, 400);
  }
  for (const [name, v] of [['number', 1], ['empty', ''], ['257 chars', 's'.repeat(257)]] as const) {
    add(webhook, `secret as ${name}`, { url: 'http://127.0.0.1:9/hook', secret: v, events: ['push'] }, /secret/, 400);
  }
  for (const [name, v] of [['a string', 'push'], ['numbers', [1]], ['unknown event', ['nope']], ['empty', []], ['"__proto__"', ['__proto__']]] as const) {
    add(webhook, `events as ${name}`, { url: 'http://127.0.0.1:9/hook', secret: 's', events: v }, /events/, 400);
  }

  // Deploys and manual runs: refs and environments.
  add(deploy, 'environment the pipeline does not define', { ref: 'main', environment: 'production' }, /environment/, 400);
  for (const [name, v] of [['number', 1], ['traversal', '../prod'], ['NUL inside', 'prod\u0000'], ['65 chars', 'p'.repeat(65)], ['array', ['production']]] as const) {
    add(deploy, `environment as ${name}`, { ref: 'main', environment: v }, /environment/, 400);
  }
  for (const [name, v, st] of [['number', 1, 400], ['empty', '', 400], ['256 chars', 'r'.repeat(256), 400], ['NUL inside', 'ma\u0000in', [400, 404]], ['an option', '--output=/tmp/x', [400, 404]], ['a range', 'main..main', [400, 404]]] as const) {
    add(deploy, `ref as ${name}`, { ref: v, environment: 'production' }, /\bref\b|environment/, st as number | number[]);
    add(run, `ref as ${name}`, { ref: v }, /\bref\b/, st as number | number[]);
  }
  return cases;
}
