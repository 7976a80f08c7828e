import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { createDb, type Db } from '../../core/db';
import { createGatewayApp } from '../../gateway/app';
import { upstreamPolicies } from '../../gateway/proxy';
import { platformInfo } from '../harness/platform-info';
import { parseProm } from '../helpers/prom';

// ADR 0028: each upstream instance's circuit breaker is on the gateway's /metrics, labelled by the
// upstream's name and the instance's host:port (never a request's path): its state as one gauge
// per state (1 for the current one), and how often it opened. A gateway of the test's own in front
// of an upstream that fails, then recovers.

let db: Db;
const servers: http.Server[] = [];

async function listen(handler: http.RequestListener): Promise<URL> {
  const server = http.createServer(handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
}

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

test("an opened breaker is on /metrics by upstream and address, and its closing too", async () => {
  let healthy = false;
  const upstream = await listen((_req, res) => {
    if (healthy) res.writeHead(200).end('ok');
    else res.writeHead(502).end();
  });
  const policies = { api: upstreamPolicies({ name: 'api', halfOpenAfterMs: 300, retryInitialDelayMs: 10 }), git: upstreamPolicies({ name: 'git', retryInitialDelayMs: 10 }) };
  const app = createGatewayApp({ db, log: pino({ level: 'silent' }), internalSecret: platformInfo().internalSecret, upstreams: { api: upstream, git: upstream }, policies, healthChecks: {} });
  const base = await listen(app);
  const metrics = async () => parseProm(await (await fetch(`${base.origin}/metrics`)).text());
  const labels = (state: string) => ({ upstream: 'api', address: upstream.host, state });

  expect((await fetch(`${base.origin}/api/v1/runs/3f2a`)).status).toBe(502);
  // Four failed attempts: still closed.
  let m = await metrics();
  expect(m.sum('dotgit_circuit_breaker_state', labels('closed'))).toBe(1);
  expect(m.sum('dotgit_circuit_breaker_state', labels('open'))).toBe(0);
  expect(m.sum('dotgit_circuit_breaker_opens_total', { upstream: 'api', address: upstream.host }) ?? 0).toBe(0);

  await fetch(`${base.origin}/api/v1/runs/77aa`);
  m = await metrics();
  expect(m.sum('dotgit_circuit_breaker_state', labels('open'))).toBe(1);
  expect(m.sum('dotgit_circuit_breaker_state', labels('closed'))).toBe(0);
  expect(m.sum('dotgit_circuit_breaker_opens_total', { upstream: 'api', address: upstream.host })).toBe(1);
  // The ids in the paths are nowhere in the breaker's series.
  const breakerLines = m.text.split('\n').filter((l) => l.startsWith('dotgit_circuit_breaker'));
  expect(breakerLines.length).toBeGreaterThan(0);
  expect(breakerLines.filter((l) => l.includes('3f2a') || l.includes('77aa'))).toEqual([]);

  healthy = true;
  await new Promise((r) => setTimeout(r, 400)); // half-open: the next request probes and closes it
  expect((await fetch(`${base.origin}/api/v1/x`)).status).toBe(200);
  m = await metrics();
  expect(m.sum('dotgit_circuit_breaker_state', labels('closed'))).toBe(1);
  expect(m.sum('dotgit_circuit_breaker_state', labels('open'))).toBe(0);
  expect(m.sum('dotgit_circuit_breaker_opens_total', { upstream: 'api', address: upstream.host })).toBe(1);
});
