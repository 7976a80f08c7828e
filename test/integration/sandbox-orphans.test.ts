import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { holdSandboxPath, pruneOrphanedSandboxState } from '../../activities/sandbox/orphans';
import { locateRunsc } from '../../activities/sandbox/locate';
import { RunscDriver } from '../../activities/sandbox/runsc-driver';
import { isMountPoint, mountTmpfs, workspaceDir } from '../../activities/workspace';

/**
 * What a worker killed with -9 leaves behind (the OCI bundle, a tmpfs workspace, runsc's state of a
 * container whose sandbox died with the worker), made by a real child process running the real runsc driver and then
 * SIGKILLed; pruneOrphanedSandboxState removes it, except what a run still in progress owns.
 */
jest.setTimeout(90_000);

const ROOT = path.resolve(__dirname, '../..');
let root: string;
let stateDir: string;
let workspacesDir: string;
const runsc = locateRunsc()!;

beforeAll(() => {
  root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'dotgit-orphans-test-')));
  fs.chmodSync(root, 0o711);
  stateDir = path.join(root, 'sandbox');
  workspacesDir = path.join(root, 'workspaces');
});

afterAll(async () => {
  await RunscDriver.releaseState(stateDir);
  execFileSync('sh', ['-c', `grep -o ' ${root}[^ ]*' /proc/self/mounts | sort -r | xargs -r -n1 umount -l`]);
  fs.rmSync(root, { recursive: true, force: true });
});

const containers = () =>
  (JSON.parse(execFileSync(runsc, [`--root=${path.join(stateDir, 'runsc-root')}`, 'list', '--format=json'], { encoding: 'utf8' }) || '[]') ?? []) as { id: string; status: string }[];

/** A worker stand-in: mounts the job's tmpfs workspace, starts a long step under runsc, and is killed -9 once the step prints. */
async function killedWorkerMidStep(runId: string): Promise<string> {
  const ws = workspaceDir(workspacesDir, runId, 'build');
  await mountTmpfs(ws, 16 * 1024 * 1024);
  const script = `
    const { RunscDriver } = require(${JSON.stringify(path.join(ROOT, 'activities/sandbox/runsc-driver.ts'))});
    new RunscDriver({ stateDir: ${JSON.stringify(stateDir)} }).run({ workspace: ${JSON.stringify(ws)}, command: 'echo started; sleep 3; echo ran-on > ran-on; sleep 600',
      env: {}, timeoutMs: 600000, onLine: (s, l) => console.log(l) });`;
  const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d) => String(d).includes('started') && resolve());
    child.once('exit', (code) => reject(new Error(`the stand-in worker exited (${code}) before the step started`)));
  });
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  return ws;
}

test("a killed worker's step dies with it; its bundle, tmpfs workspace and container state are pruned at start", async () => {
  const ws = await killedWorkerMidStep('run-orphan-1');
  // The step's sandbox died with its worker (parent-death signal): its command does not run on
  // unseen while Temporal runs the step again elsewhere (a deploy step would act twice).
  await new Promise((r) => setTimeout(r, 5000));
  expect(fs.existsSync(path.join(ws, 'ran-on'))).toBe(false);
  expect(containers().map((c) => c.status)).not.toContain('running');
  // What the kill left: the bundle, the mount, and whatever state runsc kept of the container.
  expect(fs.readdirSync(path.join(stateDir, 'bundles')).length).toBe(1);
  expect(await isMountPoint(ws)).toBe(true);

  const report = await pruneOrphanedSandboxState({ stateDir, workspacesDir, activeRunIds: async () => [] });
  expect(report.bundles).toHaveLength(1);
  expect(report.unmounted).toContain(ws);
  expect(containers()).toEqual([]);
  expect(fs.readdirSync(path.join(stateDir, 'bundles'))).toEqual([]);
  expect(await isMountPoint(ws)).toBe(false);
  expect(fs.readdirSync(workspacesDir)).toEqual([]);
  // No runsc process of that step is left on the host.
  const left = () => {
    try {
      return execFileSync('pgrep', ['-f', '--', stateDir], { encoding: 'utf8' }).trim();
    } catch {
      return ''; // pgrep exits 1 when nothing matches
    }
  };
  for (let i = 0; i < 50 && left() !== ''; i++) await new Promise((r) => setTimeout(r, 100));
  expect(left()).toBe('');
});

test('the workspace of a run still in progress is kept (its retried step reuses it); age and in-use paths are respected', async () => {
  const active = workspaceDir(workspacesDir, 'run-still-going', 'build');
  const finished = workspaceDir(workspacesDir, 'run-done', 'build');
  const held = workspaceDir(workspacesDir, 'run-held', 'build');
  for (const ws of [active, finished, held]) fs.mkdirSync(ws, { recursive: true });
  fs.writeFileSync(path.join(active, 'out.txt'), 'from step 1');
  const release = holdSandboxPath(held);
  try {
    // Periodic pruning with an age: everything here is new, so nothing goes.
    const young = await pruneOrphanedSandboxState({ stateDir, workspacesDir, olderThanMs: 60_000, activeRunIds: async () => [] });
    expect(young.workspaces).toEqual([]);
    const report = await pruneOrphanedSandboxState({ stateDir, workspacesDir, activeRunIds: async () => ['run-still-going'] });
    expect(report.workspaces).toEqual([path.basename(path.dirname(finished))]);
    expect(fs.readFileSync(path.join(active, 'out.txt'), 'utf8')).toBe('from step 1');
    expect(fs.existsSync(held)).toBe(true);
    expect(fs.existsSync(finished)).toBe(false);
  } finally {
    release();
  }
});
