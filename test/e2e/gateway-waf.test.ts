import net from 'node:net';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { platformInfo } from '../harness/platform-info';
import { createTenantWithAdmin, type TenantFixture } from '../helpers/api-client';

// The gateway's edge checks against the running platform: each refusal is a clear 4xx.

let t: TenantFixture;
const gw = () => platformInfo().gatewayUrl;
beforeAll(async () => {
  t = await createTenantWithAdmin();
});

/** Sends raw bytes and returns what the gateway answered (status line and body). */
function raw(request: string | Buffer): Promise<string> {
  const { hostname, port } = new URL(gw());
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname);
    let answer = '';
    socket.on('data', (d) => (answer += d));
    socket.on('end', () => resolve(answer));
    socket.on('close', () => resolve(answer));
    socket.on('error', reject);
    socket.end(request);
  });
}

test('methods outside the allow-list are 405 with Allow', async () => {
  const res = await fetch(`${gw()}/api/v1/repos/a/b`, { method: 'TRACE' }).catch(() => undefined);
  // fetch refuses TRACE itself; send it raw.
  if (!res) {
    const answer = await raw('TRACE /api/v1/repos/a/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 405/);
    expect(answer).toMatch(/Allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS/i);
  } else expect(res.status).toBe(405);
  const git = await fetch(`${gw()}/a/b.git/info/refs`, { method: 'DELETE' });
  expect(git.status).toBe(405);
  expect(git.headers.get('allow')).toBe('GET, HEAD, POST, PUT');
});

test('bodies over the limit are 413, declared or streamed', async () => {
  const declared = await fetch(`${gw()}/api/v1/repos`, {
    method: 'POST',
    headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/json', 'content-length': String(2 * 1024 * 1024) },
    body: 'x'.repeat(2 * 1024 * 1024),
  });
  expect(declared.status).toBe(413);
  expect((await declared.json()).error.code).toBe('payload_too_large');
  // Chunked, no Content-Length: counted as it streams.
  const body = new ReadableStream({
    start(c) {
      for (let i = 0; i < 40; i++) c.enqueue(new Uint8Array(64 * 1024).fill(120));
      c.close();
    },
  });
  const streamed = await fetch(`${gw()}/api/v1/repos`, {
    method: 'POST',
    headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/json' },
    body,
    duplex: 'half',
  } as RequestInit);
  expect(streamed.status).toBe(413);
});

test('too many or too large headers are 431', async () => {
  const many = Array.from({ length: 120 }, (_, i) => `X-H${i}: v`).join('\r\n');
  expect(await raw(`GET /api/v1/repos/a/b HTTP/1.1\r\nHost: x\r\n${many}\r\nConnection: close\r\n\r\n`)).toMatch(/^HTTP\/1\.1 431/);
  expect(await raw(`GET /api/v1/repos/a/b HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\nConnection: close\r\n\r\n`)).toMatch(/^HTTP\/1\.1 431/);
});

test('traversal in the raw path is 400', async () => {
  for (const p of ['/api/v1/../internal/repos', '/api/v1/%2e%2e/x', '/acme//web.git/info/refs', '/acme/web.git/..%2f..%2fetc']) {
    const answer = await raw(`GET ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 400/);
  }
});

test('a token in the query string is refused and never logged', async () => {
  const secret = t.token;
  const res = await fetch(`${gw()}/api/v1/repos/${t.tenant}/x?access_token=${secret}`);
  expect(res.status).toBe(400);
  expect((await res.json()).error.code).toBe('token_in_url');
  await new Promise((r) => setTimeout(r, 300));
  const log = readFileSync(path.join(platformInfo().dataDir, 'logs', 'gateway.log'), 'utf8');
  expect(log).not.toContain(secret);
});

test('malformed X-Request-Id values are replaced', async () => {
  const res = await fetch(`${gw()}/api/v1/repos/a/b`, { headers: { 'x-request-id': 'bad id <script>' } });
  expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
});

test('a slowloris client is cut off', async () => {
  const { hostname, port } = new URL(gw());
  const socket = net.connect(Number(port), hostname);
  socket.write('GET /api/v1/repos/a/b HTTP/1.1\r\nHost: x\r\n');
  const drip = setInterval(() => socket.write('X-Slow: 1\r\n'), 1000);
  const closedBy = await new Promise<string>((resolve) => {
    let answer = '';
    socket.on('data', (d) => (answer += d));
    socket.on('close', () => resolve(answer));
    socket.on('error', () => resolve(answer));
    setTimeout(() => resolve('still open'), 40_000);
  });
  clearInterval(drip);
  socket.destroy();
  expect(closedBy).not.toBe('still open');
}, 60_000);

test('a fragment (#) in the request target, or raw spaces and non-ASCII bytes in its path, are 400 bad_path: a push cannot pass for a fetch', async () => {
  // The path's last segment decides a request's class: with the fragment left in, this push would
  // be classed as a fetch (no push limits, no credential demand) by a parser that cut only at "?".
  const push = await raw('POST /o/r.git/git-receive-pack#x HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-git-receive-pack-request\r\nContent-Length: 4\r\nConnection: close\r\n\r\n0000');
  expect(push).toMatch(/^HTTP\/1\.1 400/);
  expect(push).toContain('"code":"bad_path"');
  expect(push).toContain('fragment');
  const api = await raw('GET /api/v1/repos#frag HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  expect(api).toMatch(/^HTTP\/1\.1 400/);
  expect(api).toContain('"code":"bad_path"');
  // A raw byte past ASCII (node's parser may refuse it first; either way nothing is forwarded).
  const nbsp = await raw(Buffer.concat([Buffer.from('GET /api/v1/repos/a/b'), Buffer.from([0xa0]), Buffer.from(' HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')]));
  expect(nbsp).toMatch(/^HTTP\/1\.1 400/);
});
