import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import path from 'node:path';
import pino from 'pino';
import { createDb, type Db } from '../../core/db';
import { UpstreamPool } from '../../core/upstream-pool';
import { createGatewayApp } from '../../gateway/app';
import { upstreamPolicies } from '../../gateway/proxy';
import { LIMITS_OUT_OF_THE_WAY } from '../../infra/own-platform-env';
import { freePort } from '../../infra/provision/free-port';
import { platformInfo } from '../harness/platform-info';
import { createPrivateRepo, createTenantWithAdmin, type TenantFixture } from '../helpers/api-client';
import { git, tempDir, writeFiles } from '../helpers/git';
import { cloneUrlVia, seededPrivateRepo } from '../helpers/own-gateway';
import { killAllServices, startService, type OwnService } from '../helpers/own-services';

// Balancing across upstream instances (issue 11 item 5, ADR 0014 "Balancing"). First a gateway
// in front of small HTTP servers this test controls (round robin, a refused connection re-sent,
// a failure after bytes not re-sent, taken out and back, all down, upgrades); then a real gateway
// process in front of two real api processes (the shared platform's Postgres, Redis, Temporal),
// one of them killed with SIGKILL under steady load and started again.

async function waitUntil(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('a gateway over two small upstreams', () => {
  let db: Db;
  const servers = new Set<http.Server>();
  const pools: UpstreamPool[] = [];

  /**
   * An upstream named `name` on `port` (0: any): answers JSON (with `status`, default 200/201) with its name and the body it read
   * (`seen` lists its requests, probes aside); `/api/v1/crash` cuts the connection after reading the body.
   */
  async function upstream(name: string, port = 0, status?: number) {
    const seen: { method: string; body: string }[] = [];
    const health = { status: 200 };
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.url === '/healthz') return void res.writeHead(health.status).end(health.status === 200 ? '{"status":"ok"}' : '{"status":"draining"}');
        seen.push({ method: req.method!, body: Buffer.concat(chunks).toString() });
        if (req.url === '/api/v1/crash') return void req.socket.destroy();
        res.writeHead(status ?? (req.method === 'POST' ? 201 : 200), { 'content-type': 'application/json', ...(status ? { 'retry-after': '7' } : {}) }).end(JSON.stringify({ name, body: Buffer.concat(chunks).toString() }));
      });
    });
    server.on('upgrade', (_req, socket: Duplex) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      socket.end(name);
    });
    servers.add(server);
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    const url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    return {
      url,
      seen,
      /** What its `/healthz` answers (200 unless set). */
      health,
      close: () => {
        servers.delete(server);
        server.closeAllConnections();
        return new Promise<void>((r) => server.close(() => r()));
      },
    };
  }

  /**
   * A gateway (in-process) over one pool of `urls` for both built-in upstreams; probes every 100 ms,
   * or (`probes: false`) none: then only the requests themselves find out an instance is not there.
   */
  async function gatewayOver(urls: URL[], o: { probes?: boolean } = {}) {
    const pool = new UpstreamPool('api', urls, { probeIntervalMs: 100, probeTimeoutMs: 1000 });
    if (o.probes !== false) pool.start();
    pools.push(pool);
    const policies = { api: upstreamPolicies({ retryInitialDelayMs: 10 }), git: upstreamPolicies({ retryInitialDelayMs: 10 }) };
    const app = createGatewayApp({ db, log: pino({ level: 'silent' }), internalSecret: platformInfo().internalSecret, upstreams: { api: pool, git: pool }, policies, healthChecks: { api: () => pool.check() } });
    const server = http.createServer(app);
    server.on('upgrade', app.onUpgrade);
    servers.add(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, pool, port: (server.address() as AddressInfo).port };
  }

  /** A port nothing listens on: connections to it are refused. */
  async function deadUrl(): Promise<URL> {
    return new URL(`http://127.0.0.1:${await freePort()}`);
  }

  beforeAll(() => {
    db = createDb(platformInfo().databaseUrl, 2);
  });
  afterAll(async () => {
    for (const p of pools) p.stop();
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
    await db.end();
  });

  const namesOf = (answers: Response[]) => Promise.all(answers.map(async (r) => ((await r.json()) as { name: string }).name));

  test('requests go round robin over the instances', async () => {
    const a = await upstream('a');
    const b = await upstream('b');
    const { base } = await gatewayOver([a.url, b.url]);
    const names: string[] = [];
    for (let i = 0; i < 10; i++) names.push(...(await namesOf([await fetch(`${base}/api/v1/x`)])));
    expect(names.filter((n) => n === 'a')).toHaveLength(5);
    expect(names.filter((n) => n === 'b')).toHaveLength(5);
  });

  test('a POST whose connection was refused is sent, body whole, to another instance; the refusing one is taken out', async () => {
    const b = await upstream('b');
    const { base, pool } = await gatewayOver([await deadUrl(), b.url], { probes: false });
    // No Idempotency-Key: a streamed body, never retried once it was sent.
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${base}/api/v1/things`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: `thing ${i}` });
      expect(res.status).toBe(201);
      expect(await res.json()).toEqual({ name: 'b', body: `thing ${i}` });
    }
    expect(pool.instances[0].state).toBe('down');
    const push = await fetch(`${base}/o/r.git/git-receive-pack`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`x:${platformInfo().adminToken}`).toString('base64')}` },
      body: 'pack',
    });
    expect(push.status).toBe(201);
    expect(b.seen.filter((s) => s.method === 'POST').map((s) => s.body)).toEqual(['thing 0', 'thing 1', 'thing 2', 'thing 3', 'pack']);
  });

  test('a POST that failed after reaching an instance is not sent again', async () => {
    const a = await upstream('a');
    const b = await upstream('b');
    const { base } = await gatewayOver([a.url, b.url]);
    const res = await fetch(`${base}/api/v1/crash`, { method: 'POST', body: 'once' });
    expect(res.status).toBe(502);
    expect([...a.seen, ...b.seen].filter((s) => s.method === 'POST')).toHaveLength(1);
  });

  test('a stopped instance gets no requests and no client sees an error; started again, it gets requests again', async () => {
    const a = await upstream('a');
    const b = await upstream('b');
    const { base, pool } = await gatewayOver([a.url, b.url]);
    await namesOf(await Promise.all(Array.from({ length: 4 }, () => fetch(`${base}/api/v1/x`))));
    const port = Number(a.url.port);
    await a.close();
    const during = await Promise.all(Array.from({ length: 20 }, () => fetch(`${base}/api/v1/x`)));
    expect(during.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(new Set(await namesOf(during))).toEqual(new Set(['b']));
    expect(pool.instances[0].state).toBe('down');
    expect((await fetch(`${base}/healthz`)).status).toBe(200); // one instance is enough
    const again = await upstream('a2', port);
    await waitUntil(() => pool.instances[0].state === 'up', 10_000, 'the probe to find a again');
    const after = await namesOf(await Promise.all(Array.from({ length: 10 }, () => fetch(`${base}/api/v1/x`))));
    expect(after).toContain('a2');
    expect(again.seen.filter((s) => s.method === 'GET').length).toBeGreaterThan(0);
  });

  test('an instance that keeps failing opens its own breaker: the others go on serving, it is left alone', async () => {
    const a = await upstream('a', 0, 502);
    const b = await upstream('b');
    const { base } = await gatewayOver([a.url, b.url]);
    const answers = [];
    for (let i = 0; i < 20; i++) answers.push(await fetch(`${base}/api/v1/x`));
    expect(answers.map((r) => r.status)).toEqual(Array(20).fill(200)); // each GET that met a was retried on b
    expect(new Set(await namesOf(answers))).toEqual(new Set(['b']));
    // a's breaker opened after its 5th consecutive failure (b's successes do not close it): no more attempts on a.
    expect(a.seen).toHaveLength(5);
  });

  test('a GET every instance refuses (503) is tried on each, then the last answer itself reaches the client', async () => {
    const a = await upstream('a', 0, 503);
    const b = await upstream('b', 0, 503);
    const { base } = await gatewayOver([a.url, b.url]);
    const res = await fetch(`${base}/api/v1/x`);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('7'); // the upstream's, not ours
    expect(['a', 'b']).toContain(((await res.json()) as { name: string }).name);
    expect([a.seen.length, b.seen.length]).toEqual([2, 2]); // 4 attempts, in turn
  });

  test('an instance whose /healthz fails gets nothing while another is healthy; when none is, the reachable ones still serve', async () => {
    const a = await upstream('a');
    const b = await upstream('b');
    const { base, pool } = await gatewayOver([a.url, b.url]);
    a.health.status = 503; // draining, or a dependency of its own down
    await waitUntil(() => pool.instances[0].state === 'unhealthy', 10_000, 'the probe to see a unhealthy');
    const onlyB = await namesOf(await Promise.all(Array.from({ length: 10 }, () => fetch(`${base}/api/v1/x`))));
    expect(new Set(onlyB)).toEqual(new Set(['b']));
    // Both fail their checks (a shared dependency, e.g. Temporal, is down): requests still reach them.
    b.health.status = 503;
    await waitUntil(() => pool.instances[1].state === 'unhealthy', 10_000, 'the probe to see b unhealthy');
    const both = await Promise.all(Array.from({ length: 10 }, () => fetch(`${base}/api/v1/x`)));
    expect(both.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(new Set(await namesOf(both))).toEqual(new Set(['a', 'b']));
    expect((await fetch(`${base}/healthz`)).status).toBe(503); // but the gateway says so
  });

  test('every instance down: 503 in the error shape with Retry-After; upgrades too', async () => {
    const { base, port } = await gatewayOver([await deadUrl(), await deadUrl()], { probes: false });
    const res = await fetch(`${base}/api/v1/x`, { headers: { 'x-request-id': 'req-alldown1' } });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('2');
    const body = (await res.json()) as { error: { code: string; message: string; requestId: string } };
    expect(body.error.code).toBe('upstream_unavailable');
    expect(body.error.message).toMatch(/no api instance is reachable .*down \(ECONNREFUSED\)/);
    expect(body.error.requestId).toBe('req-alldown1');
    const push = await fetch(`${base}/o/r.git/git-receive-pack`, { method: 'POST', headers: { authorization: `Basic ${Buffer.from(`x:${platformInfo().adminToken}`).toString('base64')}` }, body: 'pack' });
    expect(push.status).toBe(503);
    expect((await fetch(`${base}/healthz`)).status).toBe(503);
    const up = await upgradeVia(port);
    expect(up.status).toBe(503);
    expect(up.text).toMatch(/"code":"upstream_unavailable"/);
  });

  test('an upgrade whose connection was refused goes to another instance', async () => {
    const b = await upstream('b');
    const { port, pool } = await gatewayOver([await deadUrl(), b.url], { probes: false });
    const up = await upgradeVia(port);
    expect(up.status).toBe(101);
    expect(up.text).toBe('b');
    expect(pool.instances[0].state).toBe('down');
  });

  /** An upgrade through the gateway on `port`: its status and what the upstream sent after (or the error body). */
  function upgradeVia(port: number): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const req = http.request({ port, host: '127.0.0.1', path: '/api/v1/runs/x/ws', headers: { Connection: 'Upgrade', Upgrade: 'websocket' } });
      const collect = (status: number, stream: NodeJS.ReadableStream, head = '') => {
        let text = head;
        stream.on('data', (d: Buffer) => (text += d.toString()));
        stream.on('end', () => resolve({ status, text }));
        stream.on('close', () => resolve({ status, text }));
      };
      req.on('upgrade', (res, socket, head) => collect(res.statusCode ?? 0, socket, head.toString()));
      req.on('response', (res) => collect(res.statusCode ?? 0, res));
      req.on('error', reject);
      req.end();
    });
  }
});

describe('a gateway process over two api processes', () => {
  interface Proc extends OwnService {
    /** GETs of `path` this process logged. */
    served: (path: string) => number;
  }
  let t: TenantFixture;
  let repoPath: string;

  async function start(entry: string, port: number, env: NodeJS.ProcessEnv): Promise<Proc> {
    const p = platformInfo();
    const served = new Map<string, number>();
    let partial = '';
    const onStdout = (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        // The api logs each read at debug: `{"msg":"request","method":"GET","path":…}`.
        const m = /"method":"GET","path":"([^"]+)"[^\n]*"msg":"request"/.exec(line);
        if (m) served.set(m[1], (served.get(m[1]) ?? 0) + 1);
      }
    };
    const s = await startService(entry, port, { DOTGIT_DATA_DIR: p.dataDir, DOTGIT_GIT_PORT: String(p.gitPort), DOTGIT_WORKER_PORT: String(p.workerPort), ...env }, { onStdout });
    return { ...s, served: (path) => served.get(path) ?? 0 };
  }

  const startApi = (port: number) => start('api/main.ts', port, { DOTGIT_API_PORT: String(port), LOG_LEVEL: 'debug' });
  let portA: number;
  let a: Proc;
  let b: Proc;
  let gw: Proc;

  // Two apis, and a gateway configured only by the two lists; its git list names a git-server that
  // is not there before the platform's real one.
  beforeAll(async () => {
    t = await createTenantWithAdmin();
    const repo = await createPrivateRepo(t, 'balanced');
    repoPath = `/api/v1/repos/${t.tenant}/${repo}`;
    const [portB, portGw, deadGit] = [await freePort(), await freePort(), await freePort()];
    portA = await freePort();
    a = await startApi(portA);
    b = await startApi(portB);
    gw = await start('gateway/main.ts', portGw, {
      PORT: String(portGw),
      DOTGIT_API_UPSTREAMS: `http://127.0.0.1:${portA},http://127.0.0.1:${portB}`,
      DOTGIT_GIT_UPSTREAMS: `http://127.0.0.1:${deadGit},http://127.0.0.1:${platformInfo().gitPort}`,
      DOTGIT_RATE_LIMITS: LIMITS_OUT_OF_THE_WAY,
      // The single-instance settings point nowhere: only the lists lead to the instances.
      DOTGIT_API_PORT: String(deadGit),
      DOTGIT_GIT_PORT: String(deadGit),
    });
  }, 180_000);
  afterAll(() => {
    killAllServices();
  });

  test('requests spread over both; one killed under load costs no client an error; started again, it gets requests', async () => {
    const get = () => fetch(`http://127.0.0.1:${gw.port}${repoPath}`, { headers: { authorization: `Bearer ${t.token}` } });

    // Spread: round robin over both.
    for (let i = 0; i < 40; i++) expect((await get()).status).toBe(200);
    await waitUntil(() => a.served(repoPath) + b.served(repoPath) >= 40, 10_000, 'the apis to log 40 reads');
    expect(a.served(repoPath)).toBeGreaterThanOrEqual(10);
    expect(b.served(repoPath)).toBeGreaterThanOrEqual(10);

    // 20 clients in a loop for ~10 s; a is killed 3 s in.
    const errors: string[] = [];
    let ok = 0;
    let stop = false;
    const client = async () => {
      while (!stop) {
        try {
          const res = await get();
          const text = await res.text();
          if (res.status === 200) ok++;
          else errors.push(`${res.status} ${text}`);
        } catch (err) {
          errors.push(String(err));
        }
      }
    };
    const clients = Array.from({ length: 20 }, client);
    await new Promise((r) => setTimeout(r, 3000));
    const aBeforeKill = a.served(repoPath);
    a.child.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 2000));
    expect((await fetch(`http://127.0.0.1:${gw.port}/healthz`)).status).toBe(200); // b is enough
    await new Promise((r) => setTimeout(r, 5000));
    stop = true;
    await Promise.all(clients);
    expect(errors.slice(0, 5)).toEqual([]);
    expect(aBeforeKill).toBeGreaterThan(40); // a took its share of the load until it was killed
    expect(ok).toBeGreaterThan(100);

    // a comes back (a new process on its port): the gateway's probe finds it and sends it requests.
    const a2 = await startApi(portA);
    await waitUntil(
      async () => {
        await Promise.all(Array.from({ length: 10 }, async () => expect((await get()).status).toBe(200)));
        return a2.served(repoPath) > 0;
      },
      30_000,
      'the restarted api to get requests',
    );
  }, 180_000);

  test('clones and pushes work through a git list whose first instance is not there', async () => {
    const repo = await seededPrivateRepo(t, 'balanced-git');
    const url = cloneUrlVia(`http://127.0.0.1:${gw.port}`, t.tenant, repo, t.token);
    const work = path.join(tempDir(), 'work');
    const clone = await git(['clone', '-q', url, work]);
    expect(clone.stderr).toBe('');
    expect(clone.code).toBe(0);
    for (let i = 0; i < 3; i++) {
      await writeFiles(work, { [`f${i}.txt`]: `${i}\n` });
      await git(['add', '.'], work);
      await git(['commit', '-q', '-m', `change ${i}`], work);
      const push = await git(['push', '-q', url, 'HEAD:main'], work);
      expect(push.stderr).not.toMatch(/error|fatal/);
      expect(push.code).toBe(0);
    }
    const again = await git(['ls-remote', url, 'refs/heads/main'], work);
    expect(again.stdout).toContain((await git(['rev-parse', 'HEAD'], work)).stdout.trim());
  }, 120_000);
});
