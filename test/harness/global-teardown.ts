import { promises as fs } from 'node:fs';
import type { Platform } from '../../infra/platform';
import { PLATFORM_FILE } from './platform-info';

export default async function globalTeardown(): Promise<void> {
  const platform = (globalThis as { __dotgitPlatform?: Platform }).__dotgitPlatform;
  if (platform) {
    await platform.stop();
    await fs.rm(platform.dataDir, { recursive: true, force: true });
  }
  await fs.rm(PLATFORM_FILE, { force: true });
}
