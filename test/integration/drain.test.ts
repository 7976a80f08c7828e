import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { Transform } from 'node:stream';
import path from 'node:path';
import { freePort } from '../../infra/provision/free-port';
import { platformInfo } from '../harness/platform-info';
import { createPrivateRepo, createTenantWithAdmin, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, tempDir } from '../helpers/git';
import { cloneUrlVia } from '../helpers/own-gateway';
import { killAllServices, startService, type OwnService } from '../helpers/own-services';

// Graceful drain (issue 11 item 6): SIGTERM to a git-server or a gateway lets the transfer in flight
// finish, answers new requests with 503 (or refuses new connections), and exits 0 within
// DOTGIT_DRAIN_SECONDS; past that grace the transfer is cut and the process still exits.
// A git-server and a gateway of the test's own (real processes, the shared platform's Postgres,
// Redis, Temporal and repositories); the git client talks through a throttling TCP proxy, so the
// SIGTERM surely lands mid-transfer.

/** A service of the test's own beside the platform's: its data dir, api and worker. */
function startOwn(entry: string, port: number, env: NodeJS.ProcessEnv): Promise<OwnService> {
  const p = platformInfo();
  return startService(entry, port, { DOTGIT_DATA_DIR: p.dataDir, DOTGIT_API_PORT: String(p.apiPort), DOTGIT_WORKER_PORT: String(p.workerPort), ...env });
}

/** A TCP proxy to `target` that passes at most `bytesPerSecond` each way; counts bytes passed. */
async function throttlingProxy(target: number, bytesPerSecond: number): Promise<{ port: number; bytes: () => number; close(): void }> {
  let bytes = 0;
  const sockets = new Set<net.Socket>();
  // Slices of 8 KiB, each followed by its share of a second.
  const throttle = () =>
    new Transform({
      async transform(chunk: Buffer, _enc, done) {
        for (let i = 0; i < chunk.length; i += 8192) {
          const slice = chunk.subarray(i, i + 8192);
          this.push(slice);
          bytes += slice.length;
          await new Promise((r) => setTimeout(r, (slice.length / bytesPerSecond) * 1000));
        }
        done();
      },
    });
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1');
    sockets.add(client).add(upstream);
    // pipe(), not pipeline(): a server that closes its socket must not take the client's side
    // down while the answer is still queued here; the client leaving ends both.
    client.pipe(throttle()).pipe(upstream);
    upstream.pipe(throttle()).pipe(client);
    client.on('error', () => undefined).on('close', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    bytes: () => bytes,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

/**
 * Waits for `cond`; a transfer (`running`) that ends first, or the deadline, fails with what the
 * git client and the services said, so a failure here explains itself.
 */
async function waitUntil(cond: () => boolean, ms: number, what: string, running?: Promise<{ code: number; stderr: string }>, services: OwnService[] = []): Promise<void> {
  let ended: { code: number; stderr: string } | undefined;
  void running?.then((r) => (ended = r));
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (ended || Date.now() > deadline) {
      const said = services.map((s) => `--- ${s.port}:\n${s.output().slice(-3000)}`).join('\n');
      throw new Error(`${ended ? `the transfer ended (exit ${ended.code}) before` : 'timed out waiting for'} ${what}: ${ended?.stderr ?? ''}\n${said}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A work tree with `mb` MiB of incompressible data on main. */
async function bigRepo(mb: number): Promise<string> {
  const dir = await localRepo({ 'README.md': 'drain\n' });
  writeFileSync(path.join(dir, 'blob.bin'), randomBytes(mb * 1024 * 1024));
  await git(['add', 'blob.bin'], dir);
  await git(['commit', '-q', '-m', 'big'], dir);
  return dir;
}

let t: TenantFixture;
const proxies: { close(): void }[] = [];

beforeAll(async () => {
  t = await createTenantWithAdmin();
}, 60_000);

afterAll(() => {
  killAllServices();
  for (const p of proxies) p.close();
});

/** An own git-server and an own gateway in front of it; `drain` seconds for the one the test stops. */
async function stack(drain: { git?: string; gateway?: string }): Promise<{ gitServer: OwnService; gateway: OwnService }> {
  const gitPort = await freePort();
  const gitServer = await startOwn('git-server/main.ts', gitPort, { DOTGIT_GIT_PORT: String(gitPort), ...(drain.git ? { DOTGIT_DRAIN_SECONDS: drain.git } : {}) });
  const gwPort = await freePort();
  const gateway = await startOwn('gateway/main.ts', gwPort, { PORT: String(gwPort), DOTGIT_GIT_PORT: String(gitPort), ...(drain.gateway ? { DOTGIT_DRAIN_SECONDS: drain.gateway } : {}) });
  return { gitServer, gateway };
}

test('SIGTERM to a git-server mid-push: the push completes, new requests get 503, the process exits 0', async () => {
  const { gitServer, gateway } = await stack({ git: '30' });
  const repo = await createPrivateRepo(t, 'drain-push');
  const work = await bigRepo(3);
  const head = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
  const proxy = await throttlingProxy(gateway.port, 600 * 1024);
  proxies.push(proxy);
  const push = git(['push', '-q', cloneUrlVia(`http://127.0.0.1:${proxy.port}`, t.tenant, repo, t.token), 'main'], work);
  // Mid-pack: a third of the data is through.
  await waitUntil(() => proxy.bytes() > 1024 * 1024, 60_000, 'the push to be under way', push, [gitServer, gateway]);
  const signalledAt = Date.now();
  gitServer.child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  expect(gitServer.child.exitCode).toBeNull();
  // New requests while draining: 503 with Retry-After and Connection: close; /healthz says draining.
  const health = await fetch(`http://127.0.0.1:${gitServer.port}/healthz`);
  expect(health.status).toBe(503);
  expect(await health.json()).toEqual({ status: 'draining' });
  const fresh = await fetch(`http://127.0.0.1:${gitServer.port}/${t.tenant}/${repo}.git/info/refs?service=git-upload-pack`);
  expect(fresh.status).toBe(503);
  expect(fresh.headers.get('retry-after')).toBe('5');
  expect(fresh.headers.get('connection')).toBe('close');
  expect((await fresh.json()).error.message).toMatch(/shutting down/);

  const pushed = await push;
  expect({ code: pushed.code, stderr: pushed.code === 0 ? '' : `${pushed.stderr}\n--- git-server:\n${gitServer.output()}` }).toEqual({ code: 0, stderr: '' });
  const exit = await gitServer.exited;
  expect(exit).toEqual({ code: 0, signal: null });
  expect(Date.now() - signalledAt).toBeLessThan(30_000);
  expect(gitServer.output()).toMatch(/"requests":[1-9].*git-server draining/);
  expect(gitServer.output()).toMatch(/git-server stopped/);
  // The push landed whole: the platform's own git-server serves the new ref and its objects.
  const remote = await git(['ls-remote', cloneUrl(t.tenant, repo, t.token), 'refs/heads/main']);
  expect(remote.stdout.split('\t')[0]).toBe(head);
  const copy = tempDir();
  expect((await git(['clone', '-q', cloneUrl(t.tenant, repo, t.token), copy])).code).toBe(0);
  expect((await git(['fsck', '--strict'], copy)).code).toBe(0);
  expect((await git(['rev-parse', 'HEAD:blob.bin'], copy)).stdout).toBe((await git(['rev-parse', 'HEAD:blob.bin'], work)).stdout);
  gateway.child.kill('SIGKILL');
}, 240_000);

test('SIGTERM to a gateway mid-clone: the clone completes, new connections are refused, the process exits 0', async () => {
  const repo = await createPrivateRepo(t, 'drain-clone');
  // Larger than the kernel's socket buffers between the gateway and the proxy, so the gateway is
  // still streaming the pack when it is stopped (its drain log line counts the request).
  const work = await bigRepo(16);
  expect((await git(['push', '-q', cloneUrl(t.tenant, repo, t.token), 'main'], work)).code).toBe(0);
  const { gitServer, gateway } = await stack({ gateway: '30' });
  const proxy = await throttlingProxy(gateway.port, 2 * 1024 * 1024);
  proxies.push(proxy);
  const copy = tempDir();
  const clone = git(['clone', '-q', cloneUrlVia(`http://127.0.0.1:${proxy.port}`, t.tenant, repo, t.token), copy]);
  await waitUntil(() => proxy.bytes() > 1024 * 1024, 60_000, 'the clone to be under way', clone, [gitServer, gateway]);
  const signalledAt = Date.now();
  gateway.child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  expect(gateway.child.exitCode).toBeNull();
  // Listening has stopped: a balancer's new connections go to another instance.
  await expect(fetch(`http://127.0.0.1:${gateway.port}/healthz`)).rejects.toThrow();

  const cloned = await clone;
  expect({ code: cloned.code, stderr: cloned.code === 0 ? '' : `${cloned.stderr}\n--- gateway:\n${gateway.output()}` }).toEqual({ code: 0, stderr: '' });
  expect((await git(['rev-parse', 'HEAD'], copy)).stdout).toBe((await git(['rev-parse', 'HEAD'], work)).stdout);
  expect((await git(['fsck', '--strict'], copy)).code).toBe(0);
  expect(await gateway.exited).toEqual({ code: 0, signal: null });
  expect(Date.now() - signalledAt).toBeLessThan(30_000);
  expect(gateway.output()).toMatch(/"requests":[1-9].*gateway draining/);
  expect(gateway.output()).toMatch(/gateway stopped/);
  gitServer.child.kill('SIGKILL');
}, 240_000);

test('a push still running past a short grace (DOTGIT_DRAIN_SECONDS=2) is cut and the git-server exits', async () => {
  const { gitServer, gateway } = await stack({ git: '2' });
  const repo = await createPrivateRepo(t, 'drain-cut');
  const work = await bigRepo(4);
  // ~40 s at this rate: far past the grace.
  const proxy = await throttlingProxy(gateway.port, 100 * 1024);
  proxies.push(proxy);
  const push = git(['push', '-q', cloneUrlVia(`http://127.0.0.1:${proxy.port}`, t.tenant, repo, t.token), 'main'], work, {}, { timeoutMs: 120_000 });
  await waitUntil(() => proxy.bytes() > 512 * 1024, 60_000, 'the push to be under way', push, [gitServer, gateway]);
  const signalledAt = Date.now();
  gitServer.child.kill('SIGTERM');
  expect(await gitServer.exited).toEqual({ code: 0, signal: null });
  const took = Date.now() - signalledAt;
  // The grace, plus the relays' stop and pool close (bounded), on a loaded machine.
  expect(took).toBeGreaterThanOrEqual(1900);
  expect(took).toBeLessThan(12_000);
  expect(gitServer.output()).toMatch(/cut the requests still running/);
  proxy.close();
  const pushed = await push;
  expect(pushed.code).not.toBe(0);
  // Nothing half-written: main was never created.
  const remote = await git(['ls-remote', cloneUrl(t.tenant, repo, t.token), 'refs/heads/main']);
  expect(remote.stdout).toBe('');
  gateway.child.kill('SIGKILL');
}, 240_000);
