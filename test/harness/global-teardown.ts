import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import type { Platform } from '../../infra/platform';
import { RunscDriver } from '../../activities/sandbox/runsc-driver';
import { unmountAllUnder } from '../../activities/workspace';
import { PLATFORM_FILE } from './platform-info';

/**
 * Under test/harness/run-lanes.cjs the solo lane may still be running suites that borrow this
 * platform's Postgres or Redis: wait until the runner says it ended.
 */
async function waitForSoloLane(): Promise<void> {
  const done = process.env.DOTGIT_TEST_SOLO_DONE_FILE;
  if (process.env.DOTGIT_TEST_LANE !== 'shared' || !done) return;
  const runner = Number(process.env.DOTGIT_TEST_RUNNER_PID);
  while (!existsSync(done) && runnerAlive(runner)) await new Promise((r) => setTimeout(r, 1000));
}

/** A runner killed before it could write the file must not leave the platform running forever. */
function runnerAlive(pid: number): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export default async function globalTeardown(): Promise<void> {
  await waitForSoloLane();
  const platform = (globalThis as { __dotgitPlatform?: Platform }).__dotgitPlatform;
  if (platform) {
    await platform.stop();
    // runsc pins a network namespace under its state dir; unmount it or the removal fails with EBUSY.
    await RunscDriver.releaseState(path.join(platform.dataDir, 'sandbox'));
    // A job's tmpfs workspace outlives a worker killed mid-job (the tests kill one) until the job ends.
    await unmountAllUnder(platform.dataDir);
    await fs.rm(platform.dataDir, { recursive: true, force: true });
  }
  // The extra shard databases of DOTGIT_TEST_SHARD_DATABASES (global-setup.ts), after the platform that used them.
  await (globalThis as { __dotgitShardDatabases?: { stop(): Promise<void> } }).__dotgitShardDatabases?.stop();
  await fs.rm(PLATFORM_FILE, { force: true });
}
