import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { BwrapDriver } from '../../activities/sandbox/bwrap-driver';
import { createSandboxDriver, resolveSandboxDriver } from '../../activities/sandbox/create-driver';
import { provisionedRunscPath } from '../../activities/sandbox/locate';
import { RunscDriver } from '../../activities/sandbox/runsc-driver';
import type { SandboxDriver, SandboxResult, SandboxRunOptions } from '../../activities/sandbox/sandbox-driver';

/**
 * The sandbox drivers against the real runtimes (gVisor runsc and bubblewrap, as installed by
 * infra/provision/sandbox.ts): output streaming, exit codes, no network, no host files, no host
 * environment, limits, timeout and cancellation. Every case runs under both drivers.
 */
jest.setTimeout(30_000);

let root: string;
let stateDir: string;
let projectDir: string;
let server: net.Server;
let serverPort: number;
let serverConnections = 0;

beforeAll(async () => {
  root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'dotgit-sandbox-test-')));
  // Like the data dir in production: searchable, so an unprivileged bwrap can reach workspaces.
  fs.chmodSync(root, 0o711);
  stateDir = path.join(root, 'state');
  // Stands in for the project checkout / data dir: must stay invisible to steps.
  projectDir = path.join(root, 'project');
  fs.mkdirSync(projectDir);
  fs.writeFileSync(path.join(projectDir, 'secret.txt'), 'TOP-SECRET\n');
  process.env.SECRET_HOST_VAR = 'host-secret-value';
  server = net.createServer((socket) => {
    serverConnections++;
    socket.end('hello from the host\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  serverPort = (server.address() as net.AddressInfo).port;
});

afterAll(async () => {
  delete process.env.SECRET_HOST_VAR;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await RunscDriver.releaseState(stateDir);
  fs.rmSync(root, { recursive: true, force: true });
});

interface Ran extends SandboxResult {
  stdout: string[];
  stderr: string[];
  ms: number;
  workspace: string;
}

async function run(driver: SandboxDriver, command: string, extra: Partial<SandboxRunOptions> = {}): Promise<Ran> {
  const workspace = extra.workspace ?? fs.mkdtempSync(path.join(root, 'ws-'));
  const stdout: string[] = [];
  const stderr: string[] = [];
  const t0 = Date.now();
  const result = await driver.run({
    workspace,
    command,
    env: {},
    timeoutMs: 20_000,
    ...extra,
    onLine: (stream, line) => {
      (stream === 'stdout' ? stdout : stderr).push(line);
      extra.onLine?.(stream, line);
    },
  });
  return { ...result, stdout, stderr, ms: Date.now() - t0, workspace };
}

const drivers: [string, () => SandboxDriver][] = [
  ['runsc', () => new RunscDriver({ stateDir, graceMs: 1500 })],
  ['bwrap', () => new BwrapDriver({ stateDir, graceMs: 1500 })],
];

describe.each(drivers)('%s driver', (name, make) => {
  let driver: SandboxDriver;
  beforeAll(() => {
    driver = make();
  });

  test('streams stdout and stderr line by line, in order, with a trailing partial line', async () => {
    const r = await run(driver, 'for i in 1 2 3 4 5 6 7 8 9 10; do echo "out $i"; echo "err $i" >&2; done; printf "no newline"');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toEqual([...Array.from({ length: 10 }, (_, i) => `out ${i + 1}`), 'no newline']);
    expect(r.stderr).toEqual(Array.from({ length: 10 }, (_, i) => `err ${i + 1}`));
  });

  test('propagates the exit code, and -e stops at the first failing command', async () => {
    expect((await run(driver, 'exit 7')).exitCode).toBe(7);
    const r = await run(driver, 'echo before; false; echo after');
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toEqual(['before']);
  });

  test.each(['none', 'isolated'] as const)('network %s: cannot reach a port listening on the host loopback', async (network) => {
    const probe = `node -e "require('net').connect(${serverPort}, '127.0.0.1').on('connect', () => { console.log('REACHED'); process.exit(0) }).on('error', (e) => { console.log('BLOCKED', e.code); process.exit(0) })"`;
    const r = await run(driver, probe, { network });
    expect(r.exitCode).toBe(0);
    expect(r.stdout.join('\n')).toMatch(/^BLOCKED/);
    expect(serverConnections).toBe(0);
  });

  test('sees no host files: /root, /home, /work, the project dir, /etc secrets', async () => {
    const secret = path.join(projectDir, 'secret.txt');
    const paths = ['/root', '/home', '/work', '/work/main', projectDir, secret, '/etc/shadow', '/etc/ssh', '/etc/ssl/private'];
    const r = await run(driver, `for p in ${paths.join(' ')}; do if [ -e "$p" ]; then echo "VISIBLE $p"; else echo "ABSENT $p"; fi; done; cat ${secret} 2>/dev/null || echo unreadable`);
    expect(r.stdout).toEqual([...paths.map((p) => `ABSENT ${p}`), 'unreadable']);
    expect(r.stdout.join('\n')).not.toContain('TOP-SECRET');
  });

  test('the toolchain and root are read-only; /tmp is writable; the step is not root', async () => {
    const r = await run(driver, 'id -u; touch /usr/x 2>/dev/null || echo usr-ro; touch /x 2>/dev/null || echo root-ro; echo t > /tmp/t && cat /tmp/t; pwd');
    expect(r.stdout).toEqual(['1000', 'usr-ro', 'root-ro', 't', '/workspace']);
  });

  test('reads the workspace and writes into it, visible on the host', async () => {
    const workspace = fs.mkdtempSync(path.join(root, 'ws-'));
    fs.writeFileSync(path.join(workspace, 'input.txt'), 'from host\n');
    const r = await run(driver, 'cat input.txt; echo "from sandbox" > /workspace/out.txt; mkdir -p sub/dir && echo nested > sub/dir/f', { workspace });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toEqual(['from host']);
    expect(fs.readFileSync(path.join(workspace, 'out.txt'), 'utf8')).toBe('from sandbox\n');
    expect(fs.readFileSync(path.join(workspace, 'sub/dir/f'), 'utf8')).toBe('nested\n');
  });

  test('gets exactly the given environment, nothing of the host', async () => {
    expect(process.env.SECRET_HOST_VAR).toBe('host-secret-value');
    const r = await run(driver, 'echo "MY=$MY_VAR"; echo "SECRET=${SECRET_HOST_VAR:-unset}"; echo "HOME=$HOME"; echo "PATH=$PATH"; env', {
      env: { MY_VAR: 'hello world' },
    });
    expect(r.stdout.slice(0, 4)).toEqual(['MY=hello world', 'SECRET=unset', 'HOME=/tmp', 'PATH=/usr/local/bin:/usr/bin:/bin']);
    expect(r.stdout.join('\n')).not.toContain('host-secret-value');
  });

  test('node, python3 and git work inside', async () => {
    const r = await run(driver, `node -e 'console.log("node", 1 + 1)'; python3 -c 'print("python", 2 + 2)'; git --version; git init -q repo && echo git-ok`);
    expect(r.stderr).toEqual([]);
    expect(r.stdout[0]).toBe('node 2');
    expect(r.stdout[1]).toBe('python 4');
    expect(r.stdout[2]).toMatch(/^git version \d/);
    expect(r.stdout[3]).toBe('git-ok');
  });

  test('the timeout kills a long command and says so', async () => {
    // Timeouts count from the sandbox's start: long enough for it to boot (and the trap below to be
    // set) on a loaded machine, far below the command's 100 s.
    const r = await run(driver, 'echo started; sleep 100; echo never', { timeoutMs: 5000 });
    expect(r.timedOut).toBe(true);
    expect(r.cancelled).toBe(false);
    expect(r.exitCode).not.toBe(0);
    expect(r.stdout).toEqual(['started']);
    expect(r.ms).toBeLessThan(20_000);
  });

  test('SIGKILL follows when the step ignores SIGTERM', async () => {
    const r = await run(driver, 'trap "" TERM; echo started; sleep 100', { timeoutMs: 5000 });
    expect(r.timedOut).toBe(true);
    expect(r.exitCode).toBe(137);
    expect(r.ms).toBeLessThan(20_000); // the timeout, the 1.5 s grace and the boot: not the command's 100 s
  });

  test('the abort signal cancels a running step', async () => {
    const ac = new AbortController();
    const r = await run(driver, 'echo started; sleep 100; echo never', {
      signal: ac.signal,
      onLine: (_stream, line) => line === 'started' && ac.abort(),
    });
    expect(r.cancelled).toBe(true);
    expect(r.timedOut).toBe(false);
    expect(r.stdout).toEqual(['started']);
    expect(r.ms).toBeLessThan(8000);
  });

  if (name === 'runsc') {
    test('gVisor enforces the limits: memory seen by the guest, RLIMIT_NPROC, RLIMIT_NOFILE', async () => {
      const limited = new RunscDriver({ stateDir, limits: { memoryBytes: 256 * 1024 ** 2, processes: 64, openFiles: 256 } });
      const r = await run(limited, 'head -1 /proc/meminfo; ulimit -p; ulimit -n');
      expect(r.stdout[0]).toMatch(/^MemTotal:\s+262144 kB$/);
      expect(r.stdout.slice(1)).toEqual(['64', '256']);
    });

    test('ls and stat work (statx) with the provisioned gVisor', async () => {
      // Provisioning builds the pinned gVisor on this kind of machine (Go is there); Debian's 2022
      // runsc would answer statx with EINVAL (ADR 0002), so insist the pinned one is in use.
      expect((driver as RunscDriver).runscPath).toBe(provisionedRunscPath());
      const r = await run(driver, 'touch f; ls -la /workspace; stat -c %U f');
      expect(r.exitCode).toBe(0);
      expect(r.stdout.at(-1)).toBe('dotgit');
    });
  }

  if (name === 'bwrap') {
    test('seccomp: no nested user namespaces', async () => {
      const r = await run(driver, 'unshare -U true 2>/dev/null && echo ALLOWED || echo DENIED');
      expect(r.stdout).toEqual(['DENIED']);
    });
  }
});

describe('createSandboxDriver', () => {
  const logger = () => ({ warn: jest.fn(), info: jest.fn() });

  test('auto picks gVisor when it works here', async () => {
    const log = logger();
    const driver = await resolveSandboxDriver('auto', { stateDir, logger: log });
    expect(driver.name).toBe('runsc');
    expect(log.info).toHaveBeenCalled();
  });

  test('a broken runsc makes auto fall back to bwrap, and makes runsc-only fail clearly', async () => {
    const broken = { stateDir, runscPath: '/bin/false' };
    const auto = createSandboxDriver('auto', { ...broken, logger: logger() });
    const r = await run(auto, 'echo ok');
    expect(r.stdout).toEqual(['ok']);
    expect(auto.name).toBe('bwrap');
    await expect(resolveSandboxDriver('runsc', broken)).rejects.toMatchObject({ name: 'SandboxUnavailableError' });
  });

  test('none warns loudly, and still passes only the given environment', async () => {
    const log = logger();
    const none = createSandboxDriver('none', { stateDir, logger: log });
    expect(none.name).toBe('none');
    expect(log.warn.mock.calls[0][1]).toMatch(/INSECURE/);
    const r = await run(none, 'echo "$X ${SECRET_HOST_VAR:-unset} $(pwd)"; exit 3', { env: { X: 'x' } });
    expect(r.exitCode).toBe(3);
    expect(r.stdout).toEqual([`x unset ${r.workspace}`]);
    const t = await run(none, 'sleep 100 & sleep 100', { timeoutMs: 300 });
    expect(t.timedOut).toBe(true);
    expect(t.ms).toBeLessThan(5000);
  });
});
