import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { createDb, type Db } from '../../core/db';
import { createGatewayApp } from '../../gateway/app';
import { upstreamPolicies } from '../../gateway/proxy';
import { platformInfo } from '../harness/platform-info';

// A gateway instance over the platform's Postgres, in front of upstreams this test controls:
// retries of idempotent requests, no retries of pushes, the breaker opening and closing again,
// and the request id and traceparent reaching the upstream.

let db: Db;
const servers: http.Server[] = [];

async function listen(handler: http.RequestListener): Promise<URL> {
  const server = http.createServer(handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
}

async function gateway(upstream: URL, halfOpenAfterMs = 60_000) {
  const policies = { api: upstreamPolicies({ halfOpenAfterMs, retryInitialDelayMs: 10 }), git: upstreamPolicies({ halfOpenAfterMs, retryInitialDelayMs: 10 }) };
  const app = createGatewayApp({ db, log: pino({ level: 'silent' }), internalSecret: platformInfo().internalSecret, upstreams: { api: upstream, git: upstream }, policies, healthChecks: {} });
  const base = await listen(app);
  return { base, policies };
}

// A push with credentials: git's credential-less first request is answered 401 by the gateway itself.
const pushAuth = () => ({ authorization: `Basic ${Buffer.from(`x:${platformInfo().adminToken}`).toString('base64')}` });

beforeAll(() => {
  db = createDb(platformInfo().databaseUrl, 2);
});
afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
  await db.end();
});

test('a GET that keeps failing is retried at most 3 times; a push is never retried', async () => {
  let hits = 0;
  const upstream = await listen((_req, res) => {
    hits++;
    res.writeHead(503).end('down');
  });
  const { base } = await gateway(upstream);
  const get = await fetch(`${base.origin}/api/v1/repos/a/b`);
  expect(get.status).toBe(503);
  expect(hits).toBe(4); // the first try and 3 retries
  hits = 0;
  const push = await fetch(`${base.origin}/a/b.git/git-receive-pack`, { method: 'POST', headers: pushAuth(), body: 'x' });
  expect(push.status).toBe(503);
  expect(hits).toBe(1);
});

test('a flaky upstream is retried until it answers', async () => {
  let hits = 0;
  const upstream = await listen((_req, res) => {
    hits++;
    if (hits < 3) res.writeHead(502).end();
    else res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
  const { base } = await gateway(upstream);
  const res = await fetch(`${base.origin}/api/v1/x`);
  expect(res.status).toBe(200);
  expect(await res.json()).toEqual({ ok: true });
  expect(hits).toBe(3);
});

test('consecutive failures open the breaker (503 without reaching the upstream); recovery closes it', async () => {
  let healthy = false;
  let hits = 0;
  const upstream = await listen((_req, res) => {
    hits++;
    if (healthy) res.writeHead(200).end('ok');
    else res.writeHead(502).end();
  });
  const { base } = await gateway(upstream, 500);
  // Two GETs: 4 + 4 failing attempts, the breaker opens after 5 consecutive failures.
  await fetch(`${base.origin}/api/v1/x`);
  await fetch(`${base.origin}/api/v1/x`);
  const before = hits;
  const open = await fetch(`${base.origin}/api/v1/x`);
  expect(open.status).toBe(503);
  expect(open.headers.get('retry-after')).toBe('10');
  expect((await open.json()).error.code).toBe('upstream_unavailable');
  expect(hits).toBe(before); // refused at the gateway
  healthy = true;
  await new Promise((r) => setTimeout(r, 600)); // half-open: the next request probes
  const probe = await fetch(`${base.origin}/api/v1/x`);
  expect(probe.status).toBe(200);
  const closed = await fetch(`${base.origin}/api/v1/x`);
  expect(closed.status).toBe(200);
});

test('request id and traceparent reach the upstream; a caller trace continues', async () => {
  let seen: http.IncomingHttpHeaders = {};
  const upstream = await listen((req, res) => {
    seen = req.headers;
    res.writeHead(200).end('ok');
  });
  const { base } = await gateway(upstream);
  const trace = '0af7651916cd43dd8448eb211c80319c';
  const res = await fetch(`${base.origin}/api/v1/x`, { headers: { 'x-request-id': 'req-abcdef12', traceparent: `00-${trace}-b7ad6b7169203331-01` } });
  expect(res.headers.get('x-request-id')).toBe('req-abcdef12');
  expect(seen['x-request-id']).toBe('req-abcdef12');
  expect(seen.traceparent).toMatch(new RegExp(`^00-${trace}-[0-9a-f]{16}-01$`));
  expect(seen.traceparent).not.toContain('b7ad6b7169203331'); // our hop is the new parent
  expect(seen['x-dotgit-identity']).toBeDefined();
  await fetch(`${base.origin}/api/v1/x`, { headers: { traceparent: 'garbage' } });
  expect(seen.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
});

test("internal headers a client sends (service token, storage nodes' forwarding and replica-read marks) never reach the upstream; an LFS action token does", async () => {
  let seen: http.IncomingHttpHeaders = {};
  const upstream = await listen((req, res) => {
    seen = req.headers;
    res.writeHead(200).end('ok');
  });
  const { base } = await gateway(upstream);
  const internal = { 'x-dotgit-service': 'forged', 'x-dotgit-forwarded-by': 'n1', 'x-dotgit-replica-read': '1', 'x-dotgit-replica-head': 'refs/heads/x' };
  const res = await fetch(`${base.origin}/api/v1/x`, { headers: { ...internal, 'x-dotgit-lfs-token': 'action' } });
  expect(res.status).toBe(200);
  for (const name of Object.keys(internal)) expect(seen[name]).toBeUndefined();
  expect(seen['x-dotgit-lfs-token']).toBe('action');
});

test('clients that hang up mid-request do not open the breaker', async () => {
  let hits = 0;
  const upstream = await listen((_req, res) => {
    hits++;
    setTimeout(() => res.writeHead(200).end('late'), 300); // slow: the clients leave first
  });
  const { base } = await gateway(upstream);
  for (let i = 0; i < 8; i++) {
    const controller = new AbortController();
    const pending = fetch(`${base.origin}/api/v1/slow`, { signal: controller.signal }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 50));
    controller.abort();
    await pending;
  }
  expect(hits).toBe(8); // each tried once: no retries for a client that left
  const res = await fetch(`${base.origin}/api/v1/slow`);
  expect(res.status).toBe(200); // the breaker is still closed
});

describe('POST retries need an Idempotency-Key', () => {
  /** An upstream that answers 503 `failures` times, then 200; records each attempt's body. */
  async function flaky(failures: number) {
    const bodies: string[] = [];
    const upstream = await listen((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        bodies.push(Buffer.concat(chunks).toString());
        if (bodies.length <= failures) res.writeHead(503).end('down');
        else res.writeHead(201, { 'content-type': 'application/json' }).end('{"made":true}');
      });
    });
    return { bodies, ...(await gateway(upstream)) };
  }

  test('a keyed POST is retried with the same body until it lands; without a key it is sent once', async () => {
    const keyed = await flaky(2);
    const body = JSON.stringify({ owner: 'acme', name: 'web' });
    const res = await fetch(`${keyed.base.origin}/api/v1/repos`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': 'create-web-1' }, body });
    expect(res.status).toBe(201);
    expect(keyed.bodies).toEqual([body, body, body]);

    const failing = await flaky(10);
    const gaveUp = await fetch(`${failing.base.origin}/api/v1/repos`, { method: 'POST', headers: { 'idempotency-key': '"quoted-key"' }, body });
    expect(gaveUp.status).toBe(503);
    expect(failing.bodies).toHaveLength(4); // the first try and at most 3 retries

    const unkeyed = await flaky(1);
    const once = await fetch(`${unkeyed.base.origin}/api/v1/repos`, { method: 'POST', body });
    expect(once.status).toBe(503);
    expect(unkeyed.bodies).toHaveLength(1);
  });

  test('a push is never retried, key or not; a body over 1 MiB is sent once', async () => {
    const push = await flaky(1);
    const res = await fetch(`${push.base.origin}/a/b.git/git-receive-pack`, { method: 'POST', headers: { ...pushAuth(), 'idempotency-key': 'push-1' }, body: 'PACK' });
    expect(res.status).toBe(503);
    expect(push.bodies).toHaveLength(1);

    const big = await flaky(1);
    const payload = 'x'.repeat(1024 * 1024 + 1);
    const bigRes = await fetch(`${big.base.origin}/a/b.git/git-upload-pack`, { method: 'POST', headers: { 'idempotency-key': 'fetch-1' }, body: payload });
    expect(bigRes.status).toBe(503);
    expect(big.bodies).toHaveLength(1);
    expect(big.bodies[0]).toHaveLength(payload.length); // streamed through whole, not cut

    const small = await flaky(1);
    const smallRes = await fetch(`${small.base.origin}/a/b.git/git-upload-pack`, { method: 'POST', headers: { 'idempotency-key': 'fetch-2' }, body: '0000' });
    expect(smallRes.status).toBe(201);
    expect(small.bodies).toEqual(['0000', '0000']);
  });

  test('a malformed Idempotency-Key is 400 and reaches no upstream', async () => {
    const up = await flaky(0);
    const res = await fetch(`${up.base.origin}/api/v1/repos`, { method: 'POST', headers: { 'idempotency-key': 'has spaces' }, body: '{}' });
    expect(res.status).toBe(400);
    expect((await res.json()).error.code).toBe('bad_idempotency_key');
    const long = await fetch(`${up.base.origin}/api/v1/repos`, { method: 'POST', headers: { 'idempotency-key': 'k'.repeat(256) }, body: '{}' });
    expect(long.status).toBe(400);
    expect(up.bodies).toHaveLength(0);
  });
});

/** A GET through a gateway whose api attempts are limited to 200 ms (retried quickly) answers 504 gateway_timeout. */
async function expectTimedOutThrough(upstream: URL): Promise<void> {
  const policies = { api: upstreamPolicies({ retryInitialDelayMs: 1, attemptTimeoutMs: 200 }), git: upstreamPolicies({ retryInitialDelayMs: 1 }) };
  const app = createGatewayApp({ db, log: pino({ level: 'silent' }), internalSecret: platformInfo().internalSecret, upstreams: { api: upstream, git: upstream }, policies, healthChecks: {} });
  const base = await listen(app);
  const res = await fetch(`${base.origin}/api/v1/repos/a/b`);
  expect(res.status).toBe(504);
  expect(((await res.json()) as { error: { code: string } }).error.code).toBe('gateway_timeout');
}

test("an upstream that does not answer within the attempt's time limit: each attempt's request is cut (its socket freed), retried, then 504", async () => {
  let hits = 0;
  let cut = 0;
  const upstream = await listen((req) => {
    hits++;
    req.socket.once('close', () => cut++); // never answered: only the gateway can end it
  });
  await expectTimedOutThrough(upstream);
  expect(hits).toBe(4); // the first try and 3 retries
  await new Promise((r) => setTimeout(r, 100));
  expect(cut).toBe(4);
});

test('an upstream that sends 503 headers and then stalls is cut at the attempt time limit too: retried, then 504', async () => {
  let hits = 0;
  const upstream = await listen((_req, res) => {
    hits++;
    res.writeHead(503, { 'content-type': 'application/json' });
    res.write('{"error":'); // and never more
  });
  await expectTimedOutThrough(upstream);
  expect(hits).toBe(4);
});
