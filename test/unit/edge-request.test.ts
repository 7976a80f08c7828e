import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { asEdgeRequest, pathOf, queryOf, sendJson } from '../../gateway/edge-request';

/** A real server whose listener is `handle`; answers one GET with the given headers. */
async function exchange(handle: http.RequestListener, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const server = http.createServer(handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const { port } = server.address() as AddressInfo;
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers });
    const out: http.IncomingHttpHeaders = {};
    res.headers.forEach((v, k) => (out[k] = v));
    return { status: res.status, headers: out, body: await res.text() };
  } finally {
    server.close();
  }
}

describe('pathOf', () => {
  it('is the request target without its query', () => {
    expect(pathOf('/api/v1/repos?page=2')).toBe('/api/v1/repos');
    expect(pathOf('/a/b.git/info/refs?service=git-upload-pack')).toBe('/a/b.git/info/refs');
    expect(pathOf('/plain')).toBe('/plain');
    expect(pathOf('/odd?')).toBe('/odd');
  });
});

describe('asEdgeRequest', () => {
  it("gives node's own request the fields the forwarding path reads, keeping its prototype", async () => {
    let seen: Record<string, unknown> = {};
    await exchange(
      (req, res) => {
        const edge = asEdgeRequest(req, pathOf(req.url!));
        seen = {
          path: edge.path,
          originalUrl: edge.originalUrl,
          ip: edge.ip,
          auth: edge.header('Authorization'),
          missing: edge.header('x-none'),
          prototype: Object.getPrototypeOf(edge) === http.IncomingMessage.prototype,
        };
        res.end();
      },
      '/api/v1/repos/a/b?x=1',
      { authorization: 'Bearer t0k' },
    );
    expect(seen).toEqual({ path: '/api/v1/repos/a/b', originalUrl: '/api/v1/repos/a/b?x=1', ip: '127.0.0.1', auth: 'Bearer t0k', missing: undefined, prototype: true });
  });
});

describe('sendJson', () => {
  it('answers with the status, the JSON body, its length and the extra headers', async () => {
    const body = { error: { code: 'rate_limited', message: 'slow down — ü', requestId: 'r1' } };
    const got = await exchange((_req, res) => sendJson(res, 429, body, { 'Retry-After': '7' }), '/x');
    expect(got.status).toBe(429);
    expect(got.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(got.headers['retry-after']).toBe('7');
    expect(Number(got.headers['content-length'])).toBe(Buffer.byteLength(JSON.stringify(body)));
    expect(JSON.parse(got.body)).toEqual(body);
  });
});

describe('queryOf', () => {
  it('is the raw query of a request target, undefined without one', () => {
    expect(queryOf('/a/b.git/info/refs?service=git-upload-pack')).toBe('service=git-upload-pack');
    expect(queryOf('/api/v1/runs?')).toBe('');
    expect(queryOf('/api/v1/runs')).toBeUndefined();
  });
});
