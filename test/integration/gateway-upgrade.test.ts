import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import pino from 'pino';
import { createDb, type Db } from '../../core/db';
import { verifyIdentity } from '../../core/internal-identity';
import { createGatewayApp } from '../../gateway/app';
import { platformInfo } from '../harness/platform-info';
import { createTenantWithAdmin, type TenantFixture } from '../helpers/api-client';

// WebSocket-style upgrades pass through the gateway: authenticated, routed, then an untouched byte pipe.

let db: Db;
let t: TenantFixture;
const servers: http.Server[] = [];
let gatewayPort = 0;
let seenUser: string | undefined;

beforeAll(async () => {
  db = createDb(platformInfo().databaseUrl, 2);
  t = await createTenantWithAdmin();
  const upstream = http.createServer((_req, res) => res.writeHead(426).end());
  upstream.on('upgrade', (req, socket: Duplex) => {
    void verifyIdentity(platformInfo().internalSecret, req.headers['x-dotgit-identity'] as string).then((id) => {
      seenUser = id.principal?.username;
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      socket.on('data', (d) => socket.write(d)); // echo
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  servers.push(upstream);
  const up = new URL(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`);
  const app = createGatewayApp({ db, log: pino({ level: 'silent' }), internalSecret: platformInfo().internalSecret, upstreams: { api: up, git: up }, healthChecks: {} });
  const gateway = http.createServer(app);
  gateway.on('upgrade', app.onUpgrade);
  await new Promise<void>((r) => gateway.listen(0, '127.0.0.1', r));
  servers.push(gateway);
  gatewayPort = (gateway.address() as AddressInfo).port;
});

afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
  await db.end();
});

function upgrade(token?: string, path = '/api/v1/runs/x/ws'): Promise<{ socket?: Duplex; status: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      port: gatewayPort,
      host: '127.0.0.1',
      path,
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    });
    req.on('upgrade', (res, socket) => resolve({ socket, status: res.statusCode ?? 0 }));
    req.on('response', (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0 });
    });
    req.on('error', reject);
    req.end();
  });
}

test('an authenticated upgrade reaches the upstream with the signed identity, and bytes flow both ways', async () => {
  const { socket, status } = await upgrade(t.token);
  expect(status).toBe(101);
  expect(seenUser).toBe(t.username);
  const echoed = await new Promise<string>((resolve) => {
    socket!.once('data', (d) => resolve(d.toString()));
    socket!.write('ping');
  });
  expect(echoed).toBe('ping');
  socket!.destroy();
});

test('a bad token or a bad path is refused before the upstream', async () => {
  expect((await upgrade('dg_not-a-token')).status).toBe(401);
  expect((await upgrade(t.token, '/api/v1/%2e%2e/x')).status).toBe(400);
  expect((await upgrade(t.token, '/elsewhere')).status).toBe(404);
});
