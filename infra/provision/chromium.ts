import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { aptInstall } from './apt';
import { ToolInstallError } from './errors';
import type { ProvisionLog } from './log';
import { findOnPath } from './which';

/** Where Debian's `chromium` package puts the browser (playwright-core is given this executablePath). */
const CANDIDATES = ['chromium', 'chromium-browser'];

/**
 * Flags for a headless Chromium that touches nothing outside the test: no sandbox (tests run as
 * root, where Chromium's own sandbox refuses to start), no GPU, no QUIC, and none of the background
 * traffic a first start makes (component updates, sync, field trials).
 */
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let installing: Promise<string> | undefined;

/**
 * The path of a Chromium binary, installing the Debian package `chromium` with apt-get when none is
 * on PATH (once per process; as root). Throws ToolInstallError when it cannot be installed.
 */
export function ensureChromium(log: ProvisionLog): Promise<string> {
  const found = findChromium();
  if (found) return Promise.resolve(found);
  return (installing ??= install(log).finally(() => (installing = undefined)));
}

function findChromium(): string | null {
  for (const name of CANDIDATES) {
    const p = findOnPath(name, ['/usr/bin']);
    if (p) return p;
  }
  return null;
}

async function install(log: ProvisionLog): Promise<string> {
  log.info('chromium not found; installing the Debian package chromium');
  if (!(await aptInstall(['chromium'], log))) throw new ToolInstallError('apt-get install chromium failed (see the log above); install it (Debian: chromium)');
  const installed = findChromium();
  if (!installed) throw new ToolInstallError('apt-get installed chromium, but no chromium binary was found');
  return installed;
}

/**
 * A fresh, empty profile directory for one browser (no cookies, cache or profile shared with another
 * run). With playwright-core: `chromium.launchPersistentContext(freshUserDataDir(), { executablePath,
 * args: CHROMIUM_FLAGS })` (playwright passes it as `--user-data-dir` and refuses that flag in
 * `args`); with a plain spawn, add `--user-data-dir=<it>` to CHROMIUM_FLAGS.
 */
export function freshUserDataDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'dotgit-chromium-'));
}
