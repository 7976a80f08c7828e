import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Platform } from '../../infra/platform';
import { RunscDriver } from '../../activities/sandbox/runsc-driver';
import { unmountAllUnder } from '../../activities/workspace';
import { PLATFORM_FILE } from './platform-info';

export default async function globalTeardown(): Promise<void> {
  const platform = (globalThis as { __dotgitPlatform?: Platform }).__dotgitPlatform;
  if (platform) {
    await platform.stop();
    // runsc pins a network namespace under its state dir; unmount it or the removal fails with EBUSY.
    await RunscDriver.releaseState(path.join(platform.dataDir, 'sandbox'));
    // A job's tmpfs workspace outlives a worker killed mid-job (the tests kill one) until the job ends.
    await unmountAllUnder(platform.dataDir);
    await fs.rm(platform.dataDir, { recursive: true, force: true });
  }
  await fs.rm(PLATFORM_FILE, { force: true });
}
