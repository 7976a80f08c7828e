import type { Ctx, HttpCase, Req } from './types';

// Hostile headers: Authorization shapes, huge headers, Content-Type, Content-Length,
// Idempotency-Key, traceparent, X-Request-Id, Content-Encoding.

const b64 = (s: string) => Buffer.from(s, 'latin1').toString('base64');

export function headerCases(c: Ctx): HttpCase[] {
  const cases: HttpCase[] = [];
  const repoUrl = `/api/v1/repos/${c.t.tenant}/${c.repo}`;
  const add = (name: string, req: Req, message: RegExp, status?: number | number[], code?: RegExp) =>
    cases.push({ kind: 'headers', name, req, expect: { shape: 'api', message, status, code } });
  const get = (authorization: string): Req => ({ method: 'GET', path: repoUrl, headers: [['Authorization', authorization]] });

  // Authorization: every malformed shape is 401 and says what is wrong with the credentials.
  const AUTH = /Authorization|token|Bearer|Basic|scheme|credential|JWT/i;
  for (const [what, value] of [
    ['"Bearer" alone', 'Bearer'],
    ['"Bearer " with only spaces', 'Bearer    '],
    ['Bearer <valid> junk', `Bearer ${c.t.token} junk`],
    ['Bearer <valid>,<valid>', `Bearer ${c.t.token},${c.t.token}`],
    ['Bearer <valid> with a tab inside', `Bearer ${c.t.token}\tx`],
    ['Bearer of an unknown token', 'Bearer dg_not-a-real-token'],
    ['Bearer of 600 characters', `Bearer ${'t'.repeat(600)}`],
    ['Bearer of 8 kB', `Bearer ${'t'.repeat(8000)}`],
    ['Bearer with non-ASCII bytes', 'Bearer dg_\u00ff\u00fe'],
    ['Bearer of the token reversed', `Bearer ${[...c.t.token].reverse().join('')}`],
    ['Bearer of the token with one byte changed', `Bearer ${c.t.token.slice(0, -1)}${c.t.token.endsWith('A') ? 'B' : 'A'}`],
    ['Basic that is not base64', 'Basic !!!not-base64!!!'],
    ['Basic without a colon', `Basic ${b64('no-colon-here')}`],
    ['Basic with an empty password', `Basic ${b64('x:')}`],
    ['Basic with a NUL-padded password', `Basic ${b64(`x:${c.t.token}\u0000`)}`],
    ['Basic with the token as user name', `Basic ${b64(`${c.t.token}:`)}`],
    ['Digest scheme', 'Digest username="x", response="y"'],
    ['Token scheme', `Token ${c.t.token}`],
    ['no scheme, only the token', c.t.token],
    ['"Bearer:" with a colon', `Bearer:${c.t.token}`],
    ['Negotiate scheme', 'Negotiate YII='],
    ['scheme of 4 kB', `${'B'.repeat(4000)} x`],
  ] as const) {
    add(`Authorization: ${what}`, get(value), AUTH, 401);
  }
  add('two Authorization headers, one valid', { method: 'GET', path: repoUrl, headers: [['Authorization', 'Bearer dg_not-a-real-token'], ['Authorization', `Bearer ${c.t.token}`]] }, AUTH, [400, 401]);

  // Sizes: one huge header, too many headers.
  add('a 20 kB header', { method: 'GET', path: repoUrl, headers: [['X-Big', 'a'.repeat(20_000)]] }, /header/i, 431);
  add('a 20 kB Authorization header', get(`Bearer ${'a'.repeat(20_000)}`), /header/i, 431);
  add('120 header fields', { method: 'GET', path: repoUrl, headers: Array.from({ length: 120 }, (_, i) => [`X-H${i}`, 'v'] as [string, string]) }, /header fields/, 431);

  // Content-Type: a JSON API answers a body of another type by naming the type it needs.
  const post = (headers: Array<[string, string]>, body: string | Buffer, extra: Partial<Req> = {}): Req => ({
    method: 'POST',
    path: '/api/v1/repos',
    headers: [['Authorization', `Bearer ${c.t.token}`], ...headers],
    body,
    ...extra,
  });
  const validRepo = JSON.stringify({ owner: c.t.tenant, name: 'ct-never-created', visibility: 'private' });
  for (const [what, type] of [
    ['text/plain', 'text/plain'],
    ['form-urlencoded', 'application/x-www-form-urlencoded'],
    ['multipart without boundary', 'multipart/form-data'],
    ['application/xml', 'application/xml'],
    ['garbage', ';;;==='],
  ] as const) {
    add(`Content-Type ${what} on a JSON endpoint`, post([['Content-Type', type]], validRepo), /Content-Type|JSON|media type/i, [400, 415]);
  }
  add('no Content-Type on a JSON body', post([], validRepo), /Content-Type|JSON|media type/i, [400, 415]);
  // A charset body-parser knows (utf-16) decodes the UTF-8 bytes into garbage: "not valid JSON" names that.
  add('Content-Type json with charset utf-16 on a UTF-8 body', post([['Content-Type', 'application/json; charset=utf-16']], validRepo), /not valid JSON/, 400, /^invalid_input$/);
  add('Content-Type json with an unknown charset', post([['Content-Type', 'application/json; charset=bogus-8']], validRepo), /unsupported charset "BOGUS-8"/, 415, /^unsupported_media_type$/);
  add('Content-Type json with charset latin1', post([['Content-Type', 'application/json; charset=latin1']], validRepo), /unsupported charset "LATIN1"/, 415, /^unsupported_media_type$/);
  add('Content-Encoding br on a body that is not br', post([['Content-Type', 'application/json'], ['Content-Encoding', 'br']], validRepo), /could not be decoded as Content-Encoding br/, 400, /^invalid_input$/);
  add('Content-Encoding of an unknown coding', post([['Content-Type', 'application/json'], ['Content-Encoding', 'x-rot13']], validRepo), /unsupported content encoding "x-rot13"/, 415, /^unsupported_media_type$/);
  add('Content-Encoding gzip on a body that is not gzip', post([['Content-Type', 'application/json'], ['Content-Encoding', 'gzip']], validRepo), /could not be decoded as Content-Encoding gzip/, 400, /^invalid_input$/);

  // Content-Length: not a number, negative, shorter than the body, twice, with chunked.
  const NODE_PARSER = /Content-Length|Transfer-Encoding|header|request/i;
  add('Content-Length not a number', post([['Content-Type', 'application/json']], validRepo, { contentLength: 'abc' }), NODE_PARSER, 400);
  add('Content-Length negative', post([['Content-Type', 'application/json']], validRepo, { contentLength: '-1' }), NODE_PARSER, 400);
  add('Content-Length given twice, different', post([['Content-Type', 'application/json'], ['Content-Length', '5'], ['Content-Length', String(validRepo.length)]], validRepo, { contentLength: null }), NODE_PARSER, 400);
  add('Content-Length with Transfer-Encoding chunked', post([['Content-Type', 'application/json'], ['Transfer-Encoding', 'chunked'], ['Content-Length', '4']], `${validRepo.length.toString(16)}\r\n${validRepo}\r\n0\r\n\r\n`, { contentLength: null }), NODE_PARSER, 400);
  add('Content-Length shorter than the body (the rest smuggled)', post([['Content-Type', 'application/json']], validRepo, { contentLength: '10' }), /JSON|Unexpected|position/i, 400);
  add('Content-Length of 10 GB', post([['Content-Type', 'application/json']], validRepo, { contentLength: String(10 * 1024 ** 3) }), /limited to \d+ bytes/, 413);
  add('Transfer-Encoding unknown', post([['Content-Type', 'application/json'], ['Transfer-Encoding', 'gzip, bogus']], validRepo, { contentLength: null }), NODE_PARSER, [400, 501]);
  add('NUL in a header value', { method: 'GET', path: repoUrl, headers: [['Authorization', `Bearer ${c.t.token}`], ['X-Evil', 'a\u0000b']] }, NODE_PARSER, 400);
  add('a header name with a space', { method: 'GET', path: repoUrl, headers: [['Authorization', `Bearer ${c.t.token}`], ['X Evil', 'v']] }, NODE_PARSER, 400);

  // Idempotency-Key: 1 to 255 printable ASCII characters.
  for (const [what, key] of [
    ['empty', ''],
    ['a space inside', 'a b'],
    ['256 characters', 'k'.repeat(256)],
    ['non-ASCII', 'clé'],
    ['a tab inside', 'a\tb'],
    ['empty quoted', '""'],
    ['4 kB', 'k'.repeat(4096)],
    ['a DEL character', 'a\u007fb'],
  ] as const) {
    add(`Idempotency-Key ${what}`, post([['Content-Type', 'application/json'], ['Idempotency-Key', key]], validRepo), /Idempotency-Key/, 400, /idempotency/);
  }

  // traceparent and X-Request-Id: a malformed one is ignored (W3C Trace Context: start a new
  // trace) or replaced; the request is answered as it would be without it: here a clean 404.
  for (const [what, tp] of [
    ['not hex', '00-zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-zzzzzzzzzzzzzzzz-01'],
    ['all-zero trace id', '00-00000000000000000000000000000000-0000000000000001-01'],
    ['version ff', 'ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'],
    ['too long (4 kB)', `00-${'a'.repeat(4096)}-b7ad6b7169203331-01`],
    ['with a fifth field', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra'],
    ['upper-case hex', '00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01'],
  ] as const) {
    add(`traceparent ${what} is ignored`, { method: 'GET', path: `/api/v1/repos/${c.t.tenant}/no-such-repo`, headers: [['Authorization', `Bearer ${c.t.token}`], ['traceparent', tp]] }, /not found/, 404, /not_found/);
  }
  for (const [what, id] of [
    ['with markup', 'bad id <script>'],
    ['of 4 kB', 'r'.repeat(4096)],
    ['too short', 'abc'],
  ] as const) {
    add(`X-Request-Id ${what} is replaced`, { method: 'GET', path: `/api/v1/repos/${c.t.tenant}/no-such-repo`, headers: [['Authorization', `Bearer ${c.t.token}`], ['X-Request-Id', id]] }, /not found/, 404, /not_found/);
  }

  // Resuming an event stream: a Last-Event-ID this stream never sent is refused before anything is streamed.
  const events = `/api/v1/runs/${encodeURIComponent(c.runId)}/events`;
  for (const [what, id] of [
    ['not an id', 'abc'],
    ['negative', '-1'],
    ['with SQL', "1700000000000-0'; DROP TABLE runs;--"],
    ['of 300 characters', '1'.repeat(300)],
    ['three parts', '1-2-3'],
  ] as const) {
    add(`Last-Event-ID ${what}`, { method: 'GET', path: events, headers: [['Authorization', `Bearer ${c.t.token}`], ['Accept', 'text/event-stream'], ['Last-Event-ID', id]] }, /Last-Event-ID/, 400, /invalid_input/);
  }
  add('lastEventId query not an id', { method: 'GET', path: `${events}?lastEventId=abc`, headers: [['Authorization', `Bearer ${c.t.token}`], ['Accept', 'text/event-stream']] }, /Last-Event-ID/, 400, /invalid_input/);
  return cases;
}
