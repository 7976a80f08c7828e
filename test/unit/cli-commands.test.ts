import { statSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { EXIT, main, program } from '../../cli/dotgit';
import { configPath, readConfig, resolveTarget, writeConfig } from '../../cli/config';
import { tempDir } from '../helpers/git';

// The command tree alone (no platform): every command and group answers --help with exit 0, usage
// errors exit 2, and the login config file is private and read in the documented order.

function commandPaths(cmd: Command, prefix: string[] = []): string[][] {
  return cmd.commands.flatMap((c) => [[...prefix, c.name()], ...commandPaths(c, [...prefix, c.name()])]);
}

async function parse(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const root = program({ writeOut: (s) => (out += s), writeErr: (s) => (err += s) });
  try {
    await root.parseAsync(argv, { from: 'user' });
    return { code: 0, out, err };
  } catch (e) {
    return { code: (e as { exitCode?: number }).exitCode === 0 ? 0 : 2, out, err };
  }
}

const paths = commandPaths(program()).filter((p) => p[p.length - 1] !== 'help');

test('the tree has the commands the README and CONTRACT name', () => {
  const names = paths.map((p) => p.join(' '));
  for (const required of ['login', 'logout', 'run watch', 'run view', 'run list', 'run start', 'run cancel', 'logs', 'deploy watch', 'deploy create', 'deploy approve', 'artifacts download', 'artifacts list', 'repo create', 'repo view', 'repo default-branch', 'token create', 'token revoke', 'secret set', 'secret list', 'secret delete', 'audit verify', 'audit list']) {
    expect(names).toContain(required);
  }
});

test.each(paths.map((p) => [p.join(' ')]))('dotgit %s --help answers its usage with exit 0', async (joined) => {
  const r = await parse([...joined.split(' '), '--help']);
  expect(r.code).toBe(0);
  expect(r.out).toContain(`Usage: dotgit ${joined}`);
  expect(r.out).toContain('--json');
});

test('-h and the root help work; the root help lists the exit codes', async () => {
  const r = await parse(['-h']);
  expect(r.code).toBe(0);
  expect(r.out).toContain('Usage: dotgit');
  const full = (await parse(['--help'])).out;
  expect(full).toContain('Commands:');
  expect(full).toMatch(/Exit codes: 0 success; 1 .*; 2 usage error; 3 not found \(404\); 4 not allowed/s);
});

test.each([
  [['frobnicate']],
  [['repo']],
  [['repo', 'view']],
  [['repo', 'view', 'a/b', 'extra']],
  [['run', 'start', 'a/b']],
  [['user', 'create', 't', 'u', '--role', 'king']],
  [['logs', 'x', '--bogus']],
])('usage error %j exits 2', async (argv) => {
  const r = await parse(argv);
  expect(r.code).toBe(EXIT.usage);
  expect(r.err.length).toBeGreaterThan(0);
});

test('arguments the parser cannot check (OWNER/NAME, scopes, token ids) are usage errors too, before any request', async () => {
  // No platform at this URL: a request would fail with exit 1, not 2.
  process.env.DOTGIT_URL = 'http://127.0.0.1:9';
  try {
    expect(await main(['repo', 'view', 'no-slash'])).toBe(EXIT.usage);
    expect(await main(['token', 'create', '--scopes', 'read,root'])).toBe(EXIT.usage);
    expect(await main(['token', 'revoke', 'abc'])).toBe(EXIT.usage);
    expect(await main(['repo', 'view', 'a/b'])).toBe(EXIT.failed);
  } finally {
    delete process.env.DOTGIT_URL;
  }
});

test('the config file is written 0600 in a 0700 directory under XDG_CONFIG_HOME, and the environment overrides it', () => {
  const home = tempDir('dotgit-xdg-');
  const env = { XDG_CONFIG_HOME: home, DOTGIT_DATA_DIR: path.join(home, 'none') };
  const file = configPath(env);
  expect(file).toBe(path.join(home, 'dotgit', 'config.json'));
  expect(configPath({ XDG_CONFIG_HOME: 'relative' })).toMatch(/\.config\/dotgit\/config\.json$/);
  writeConfig({ url: 'http://example.test:1', token: 'dg_secret' }, file);
  expect(statSync(file).mode & 0o777).toBe(0o600);
  expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
  expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ url: 'http://example.test:1', token: 'dg_secret' });
  expect(readConfig(file)).toEqual({ url: 'http://example.test:1', token: 'dg_secret' });
  expect(resolveTarget(env)).toEqual({ url: 'http://example.test:1', token: 'dg_secret' });
  expect(resolveTarget({ ...env, DOTGIT_URL: 'http://other:2', DOTGIT_TOKEN: 'dg_env' })).toEqual({ url: 'http://other:2', token: 'dg_env' });
  expect(resolveTarget({ XDG_CONFIG_HOME: tempDir('dotgit-xdg-'), DOTGIT_DATA_DIR: path.join(home, 'none') })).toEqual({ url: 'http://127.0.0.1:8080', token: undefined });
});
