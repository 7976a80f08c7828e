import http from 'node:http';
import { writeFileSync, mkdtempSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { createDb, type Db } from '../../core/db';
import { createGatewayApp } from '../../gateway/app';
import { routingTable, RoutesConfigError } from '../../gateway/routing';
import { platformInfo } from '../harness/platform-info';

// Routing from a config file: header rules send canary and versioned API traffic to other upstreams.

let db: Db;
const servers: http.Server[] = [];
async function upstream(name: string): Promise<URL> {
  const s = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(name));
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return new URL(`http://127.0.0.1:${(s.address() as AddressInfo).port}`);
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

test('header rules pick the alternate upstream; everything else takes the default', async () => {
  const [api, git, canary, v2] = await Promise.all([upstream('api'), upstream('git'), upstream('canary'), upstream('v2')]);
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'routes-')), 'routes.yml');
  writeFileSync(file, `upstreams:\n  canary: ${canary.origin}\n  v2: ${v2.origin}\nroutes:\n  - prefix: /api/\n    header: { name: x-dotgit-canary, value: "1" }\n    upstream: canary\n  - prefix: /api/\n    header: { name: x-api-version, value: "2" }\n    upstream: v2\n  - git: true\n    header: { name: x-dotgit-canary, value: "1" }\n    upstream: canary\n`);
  const app = createGatewayApp({ db, log: pino({ level: 'silent' }), internalSecret: platformInfo().internalSecret, upstreams: { api, git }, routesFile: file, healthChecks: {} });
  const s = http.createServer(app);
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  const get = async (p: string, headers: Record<string, string> = {}) => (await fetch(`${base}${p}`, { headers })).text();
  expect(await get('/api/v1/x')).toBe('api');
  expect(await get('/api/v1/x', { 'x-dotgit-canary': '1' })).toBe('canary');
  expect(await get('/api/v1/x', { 'x-dotgit-canary': '0' })).toBe('api');
  expect(await get('/api/v1/x', { 'x-api-version': '2' })).toBe('v2');
  expect(await get('/a/b.git/info/refs?service=git-upload-pack')).toBe('git');
  expect(await get('/a/b.git/info/refs?service=git-upload-pack', { 'x-dotgit-canary': '1' })).toBe('canary');
});

test('a routes file naming an unknown upstream is refused at start-up', () => {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'routes-')), 'bad.yml');
  writeFileSync(file, 'routes:\n  - prefix: /api/\n    upstream: nowhere\n');
  expect(() => routingTable({ api: new URL('http://127.0.0.1:1'), git: new URL('http://127.0.0.1:2') }, file)).toThrow(RoutesConfigError);
});
