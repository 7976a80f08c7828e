import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { createDb, type Db } from '../../core/db';
import { verifyIdentity } from '../../core/internal-identity';
import { createGatewayApp } from '../../gateway/app';
import { createHttpsServer } from '../../gateway/tls';
import { platformInfo } from '../harness/platform-info';
import { createTenantWithAdmin, type TenantFixture } from '../helpers/api-client';

// Mutual TLS at the gateway with certificates made here by openssl: a certificate signed by the
// configured CA is accepted and maps its subject to a user; none, or one from another CA, is refused.

const dir = mkdtempSync(path.join(os.tmpdir(), 'dotgit-mtls-'));
const f = (name: string) => path.join(dir, name);
const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });

function makeCa(name: string) {
  ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.crt`), '-days', '1', '-subj', `/CN=${name}`);
}
function makeCert(name: string, ca: string, cn: string, ext?: string) {
  ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${cn}`);
  const args = ['x509', '-req', '-in', f(`${name}.csr`), '-CA', f(`${ca}.crt`), '-CAkey', f(`${ca}.key`), '-CAcreateserial', '-out', f(`${name}.crt`), '-days', '1'];
  if (ext) {
    writeFileSync(f(`${name}.ext`), ext);
    args.push('-extfile', f(`${name}.ext`));
  }
  ssl(...args);
}

let db: Db;
let t: TenantFixture;
let server: https.Server;
let upstream: http.Server;
let seenPrincipal: unknown = 'none';

beforeAll(async () => {
  t = await createTenantWithAdmin();
  db = createDb(platformInfo().databaseUrl, 2);
  makeCa('ca');
  makeCa('other-ca');
  makeCert('server', 'ca', '127.0.0.1', 'subjectAltName=IP:127.0.0.1');
  makeCert('client', 'ca', t.username);
  makeCert('intruder', 'other-ca', t.username);
  upstream = http.createServer((req, res) => {
    verifyIdentity(platformInfo().internalSecret, req.headers['x-dotgit-identity'] as string).then((id) => {
      seenPrincipal = id.principal;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const up = new URL(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`);
  const app = createGatewayApp({ db, log: pino({ level: 'silent' }), internalSecret: platformInfo().internalSecret, upstreams: { api: up, git: up }, clientCert: 'required', healthChecks: {} });
  server = createHttpsServer({ certFile: f('server.crt'), keyFile: f('server.key'), clientCaFile: f('ca.crt'), clientCert: 'required' }, app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
});

afterAll(async () => {
  server.close();
  upstream.close();
  await db.end();
});

function get(client?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: (server.address() as AddressInfo).port,
        path: '/api/v1/anything',
        ca: readFileSync(f('ca.crt')),
        ...(client ? { cert: readFileSync(f(`${client}.crt`)), key: readFileSync(f(`${client}.key`)) } : {}),
      },
      (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

test('a client certificate signed by the CA is accepted and identifies its user', async () => {
  const res = await get('client');
  expect(res.status).toBe(200);
  expect(seenPrincipal).toEqual(expect.objectContaining({ username: t.username, scopes: ['read', 'write'] }));
});

test('no certificate, or one from another CA, is refused', async () => {
  const none = await get();
  expect(none.status).toBe(401);
  expect(JSON.parse(none.body).error.message).toBe('a client certificate is required');
  const intruder = await get('intruder');
  expect(intruder.status).toBe(401);
  expect(JSON.parse(intruder.body).error.message).toMatch(/not signed by the configured CA/);
});
