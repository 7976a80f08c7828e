import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Where the `dotgit` command finds the platform and its token. `dotgit login` writes the file; the
 * environment overrides it (for scripts and CI); a local `npm start`'s admin token is the last
 * resort, so the command works in a fresh checkout with nothing set.
 */
export interface CliConfig {
  url?: string;
  token?: string;
}

export const DEFAULT_URL = 'http://127.0.0.1:8080';

/** `$XDG_CONFIG_HOME/dotgit/config.json`, `~/.config/dotgit/config.json` without it (XDG Base Directory spec: a relative value is ignored). */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CONFIG_HOME;
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.config');
  return path.join(base, 'dotgit', 'config.json');
}

export function readConfig(file = configPath()): CliConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return {};
  }
  const parsed = JSON.parse(text) as unknown;
  if (!parsed || typeof parsed !== 'object') throw new Error(`${file} is not a JSON object`);
  const { url, token } = parsed as Record<string, unknown>;
  return { ...(typeof url === 'string' ? { url } : {}), ...(typeof token === 'string' ? { token } : {}) };
}

/**
 * Writes the file readable by its owner only (0600, its directory 0700): it holds a token. Written
 * to a temporary file first and renamed, so a crash never leaves half a file; chmod covers a file
 * that existed with wider modes (the mode of open() applies only to new files).
 */
export function writeConfig(c: CliConfig, file = configPath()): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, JSON.stringify(c, null, 2) + '\n', { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, file);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** URL and token in force: DOTGIT_URL / DOTGIT_TOKEN, then the config file, then the defaults. */
export function resolveTarget(env: NodeJS.ProcessEnv = process.env): { url: string; token: string | undefined } {
  const file = readConfig(configPath(env));
  return { url: env.DOTGIT_URL || file.url || DEFAULT_URL, token: env.DOTGIT_TOKEN || file.token || localAdminToken(env) };
}

/** The admin token `npm start` writes to `.data/admin.token` (DOTGIT_DATA_DIR), read from the current directory. */
function localAdminToken(env: NodeJS.ProcessEnv): string | undefined {
  try {
    return readFileSync(path.join(env.DOTGIT_DATA_DIR ?? '.data', 'admin.token'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}
