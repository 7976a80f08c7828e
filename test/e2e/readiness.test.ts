import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import pino from 'pino';
import { createDb, type Db } from '../../core/db';
import { healthAndMetrics } from '../../core/http';
import { createGatewayApp } from '../../gateway/app';
import { upstreamReadiness } from '../../gateway/readiness';
import { platformInfo } from '../harness/platform-info';

// ADR 0028: every process answers /readyz (its dependencies reachable: Postgres, Redis, Temporal,
// the worker's pollers) apart from /healthz; a process whose dependency is down is not ready and
// says which one; the gateway's /readyz names the failing dependency behind the failing part.

const info = platformInfo();
const processes = {
  gateway: info.gatewayUrl,
  api: `http://127.0.0.1:${info.apiPort}`,
  'git-server': `http://127.0.0.1:${info.gitPort}`,
  worker: `http://127.0.0.1:${info.workerPort}`,
};
const expected: Record<string, string[]> = {
  gateway: ['postgres', 'redis', 'api', 'git-server', 'worker'],
  api: ['postgres', 'redis', 'temporal'],
  'git-server': ['postgres', 'redis', 'temporal'],
  worker: ['postgres', 'redis', 'temporal', 'workers', 'sandbox'],
};

let db: Db;
const servers: http.Server[] = [];
async function listen(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
beforeAll(() => {
  db = createDb(info.databaseUrl, 2);
});
afterAll(async () => {
  for (const s of servers) s.close();
  await db.end();
});

test('every process of the platform is ready, having checked each of its dependencies', async () => {
  for (const [name, base] of Object.entries(processes)) {
    const res = await fetch(`${base}/readyz`);
    const body = (await res.json()) as { status: string; checked: string[] };
    expect([name, res.status, body.status]).toEqual([name, 200, 'ready']);
    expect([name, [...body.checked].sort()]).toEqual([name, [...expected[name]].sort()]);
    // Liveness stays where it was.
    expect([name, (await fetch(`${base}/healthz`)).status]).toEqual([name, 200]);
  }
});

test('a dependency that does not answer makes the process not ready (503, named, with the reason), while /healthz stays live', async () => {
  const app = express();
  app.use(
    healthAndMetrics({ postgres: async () => undefined }, undefined, {
      postgres: async () => undefined,
      temporal: () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:7233')),
      redis: () => new Promise(() => undefined), // never answers: timed out
    }),
  );
  const base = await listen(app);
  const res = await fetch(`${base}/readyz`);
  expect(res.status).toBe(503);
  const body = (await res.json()) as { status: string; failing: string[]; reasons: Record<string, string> };
  expect(body.status).toBe('not ready');
  expect(body.failing.sort()).toEqual(['redis', 'temporal']);
  expect(body.reasons.temporal).toContain('ECONNREFUSED');
  expect(body.reasons.redis).toMatch(/no answer within \d+ ms/);
  expect((await fetch(`${base}/healthz`)).status).toBe(200);
});

test("the gateway's /readyz names the dependency behind an upstream that is not ready", async () => {
  const notReady = await listen((_req, res) => {
    res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'not ready', failing: ['temporal'], reasons: { temporal: 'refused' } }));
  });
  const ready = `http://127.0.0.1:${info.apiPort}`;
  const gone = 'http://127.0.0.1:1';
  const app = createGatewayApp({
    db,
    log: pino({ level: 'silent' }),
    internalSecret: info.internalSecret,
    upstreams: { api: new URL(ready), git: new URL(notReady) },
    healthChecks: {},
    readyChecks: {
      // One ready instance of two is enough: requests go to it.
      api: upstreamReadiness([ready, gone]),
      'git-server': upstreamReadiness([notReady, gone]),
    },
  });
  const base = await listen(app);
  const res = await fetch(`${base}/readyz`);
  expect(res.status).toBe(503);
  const body = (await res.json()) as { failing: string[]; reasons: Record<string, string>; requestId?: string };
  expect(body.failing).toEqual(['git-server']);
  expect(body.reasons['git-server']).toContain(`${new URL(notReady).host}: temporal`);
  expect(body.reasons['git-server']).toContain('127.0.0.1:1: unreachable');
  expect(body.requestId).toEqual(expect.any(String));
});
