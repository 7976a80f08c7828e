import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BwrapDriver } from '../../activities/sandbox/bwrap-driver';
import { RunscDriver } from '../../activities/sandbox/runsc-driver';
import type { SandboxDriver, SandboxResult, SandboxRunOptions } from '../../activities/sandbox/sandbox-driver';
import { mountTmpfs, unmountIfMounted } from '../../activities/workspace';
import { MASK, SecretMasker } from '../../core/secret-mask';

/**
 * The step runtime's answers to issue 10's sandbox defects, against the real runtimes: a timeout
 * is a failure whatever the step does with SIGTERM; secrets are masked before long lines are cut;
 * a full tmpfs workspace is the shell's ENOSPC, not an OOM kill.
 */
jest.setTimeout(60_000);

let root: string;
let stateDir: string;

beforeAll(() => {
  root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'dotgit-sandbox-runtime-')));
  fs.chmodSync(root, 0o711);
  stateDir = path.join(root, 'state');
});

afterAll(async () => {
  await RunscDriver.releaseState(stateDir);
  fs.rmSync(root, { recursive: true, force: true });
});

async function run(driver: SandboxDriver, command: string, extra: Partial<SandboxRunOptions> = {}) {
  const workspace = extra.workspace ?? fs.mkdtempSync(path.join(root, 'ws-'));
  const stdout: string[] = [];
  const stderr: string[] = [];
  const result: SandboxResult = await driver.run({
    workspace,
    command,
    env: {},
    timeoutMs: 20_000,
    ...extra,
    onLine: (stream, line) => (stream === 'stdout' ? stdout : stderr).push(line),
  });
  return { ...result, stdout, stderr };
}

describe.each([
  ['runsc', () => new RunscDriver({ stateDir, graceMs: 1500 })],
  ['bwrap', () => new BwrapDriver({ stateDir, graceMs: 1500 })],
] as [string, () => SandboxDriver][])('%s driver', (_name, make) => {
  test('a step that exits 0 on SIGTERM after its timeout still times out, with exit code 124', async () => {
    // The timeout counts from the sandbox's start: ample for it to boot and set the trap on a loaded machine.
    const r = await run(make(), "trap 'exit 0' TERM; echo started; sleep 30 & wait", { timeoutMs: 8_000 });
    expect(r.stdout).toEqual(['started']);
    expect(r.timedOut).toBe(true);
    expect(r.exitCode).toBe(124);
  });

  test('a secret straddling the 64 KiB line cut is masked', async () => {
    const secret = 'straddling-secret-value-42';
    const r = await run(make(), `node -e 'process.stdout.write("x".repeat(65531) + process.env.TOKEN + " end\\n")'`, {
      env: { TOKEN: secret },
      mask: new SecretMasker([secret]),
    });
    expect(r.exitCode).toBe(0);
    // Compared without the 64 KiB of x's, so a failure prints something readable.
    const all = r.stdout.join('');
    expect(all.length - all.replace(/^x+/, '').length).toBe(65531);
    expect(all.replace(/^x+/, '')).toBe(`${MASK} end`);
    expect(r.stdout.map((l) => l.replace(/^x+/, ''))).not.toEqual(expect.arrayContaining([expect.stringMatching(/straddl|secret-value|value-42/)]));
  });
});

test('runsc: writing past a tmpfs workspace as large as the memory limit fails with ENOSPC, not exit 137', async () => {
  const mb = 1024 * 1024;
  const workspace = path.join(root, 'tmpfs-ws');
  await mountTmpfs(workspace, 128 * mb);
  try {
    // The default configuration in small: the workspace cap equals the sandbox's memory limit.
    const driver = new RunscDriver({ stateDir, limits: { memoryBytes: 128 * mb } });
    const r = await run(driver, 'dd if=/dev/zero of=big bs=1M count=200', { workspace, workspaceBytes: 128 * mb });
    expect(r.stderr.join('\n')).toMatch(/No space left on device/);
    expect(r.exitCode).toBe(1);
  } finally {
    await unmountIfMounted(workspace);
  }
});
