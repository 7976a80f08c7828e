import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { git, localRepo, tempDir } from '../helpers/git';

// The per-push hooks are shell and curl (issue 16: no Node start per hook). These run the real
// hook scripts, with real sh, curl and git, against a stand-in for the git-server's hook API that
// records what it was sent: the wire format (git-server/hook-wire.ts) and the exit codes.

const HOOKS = path.resolve(__dirname, '../../git-server/hooks');

interface Seen {
  path: string;
  token: string | undefined;
  form: URLSearchParams;
}

let server: http.Server;
let base: string;
const seen: Seen[] = [];
let answer: { status: number; body: string } = { status: 200, body: '' };

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ path: req.url ?? '', token: req.headers['x-dotgit-service'] as string | undefined, form: new URLSearchParams(Buffer.concat(chunks).toString('utf8')) });
      res.writeHead(answer.status, { 'content-type': 'text/plain' }).end(answer.body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/internal/hooks`;
});
afterAll(() => server.close());
beforeEach(() => {
  seen.length = 0;
  answer = { status: 200, body: '' };
});

/** A PATH with sh, curl, git and the tools the scripts use, but no node: a hook that starts Node fails. */
async function pathWithoutNode(): Promise<string> {
  const dir = tempDir('dotgit-nonode-');
  for (const tool of ['sh', 'curl', 'git', 'grep', 'head', 'tail', 'printf', 'cat']) {
    const found = (process.env.PATH ?? '').split(':').map((d) => path.join(d, tool));
    for (const f of found) {
      if (await fs.stat(f).then((s) => s.isFile(), () => false)) {
        await fs.symlink(f, path.join(dir, tool));
        break;
      }
    }
  }
  return dir;
}

function runHook(hook: string, args: string[], stdin: string, cwd: string, env: Record<string, string>): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(HOOKS, hook), args, { cwd, env: { DOTGIT_HOOK_URL: base, DOTGIT_HOOK_TOKEN: 'hook-token-1', ...env } });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stderr }));
    // A hook may exit without reading its input (a state it ignores), as git allows: EPIPE is not an error.
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin);
  });
}

async function history(): Promise<{ dir: string; first: string; second: string; rewritten: string }> {
  const dir = await localRepo({ 'a.txt': 'a\n' });
  await fs.writeFile(path.join(dir, 'b.txt'), 'b\n');
  await git(['add', '.'], dir);
  await git(['commit', '-qm', 'second'], dir);
  const rev = async (r: string) => (await git(['rev-parse', r], dir)).stdout.trim();
  const [first, second] = [await rev('HEAD~1'), await rev('HEAD')];
  await git(['commit', '-q', '--amend', '-m', 'second, rewritten'], dir);
  return { dir, first, second, rewritten: await rev('HEAD') };
}

test('pre-receive sends each update with its fast-forward verdict and the push options byte for byte, without Node', async () => {
  const h = await history();
  const zero = '0'.repeat(40);
  const options = ['ci.skip', 'a "quoted" value & more=1', 'ünïcode\tand tab', '%41 not decoded twice'];
  const env: Record<string, string> = { PATH: await pathWithoutNode(), GIT_PUSH_OPTION_COUNT: String(options.length) };
  options.forEach((o, i) => (env[`GIT_PUSH_OPTION_${i}`] = o));
  answer = { status: 200, body: 'dotgit: looks fine\n' };
  const stdin = [`${h.first} ${h.second} refs/heads/main`, `${h.second} ${h.rewritten} refs/heads/rewritten`, `${zero} ${h.first} refs/heads/new`, `${h.first} ${zero} refs/heads/gone`].join('\n') + '\n';
  const r = await runHook('pre-receive', [], stdin, h.dir, env);
  expect(r).toEqual({ code: 0, stderr: 'dotgit: looks fine\n' });
  expect(seen).toHaveLength(1);
  expect(seen[0].path).toBe('/internal/hooks/pre-receive');
  expect(seen[0].token).toBe('hook-token-1');
  expect(seen[0].form.get('updates')).toBe(
    [`${h.first} ${h.second} refs/heads/main`, `${h.second} ${h.rewritten} refs/heads/rewritten nff`, `${zero} ${h.first} refs/heads/new`, `${h.first} ${zero} refs/heads/gone`].join('\n') + '\n',
  );
  expect(seen[0].form.getAll('option')).toEqual(options);
  expect(seen[0].form.has('state')).toBe(false);
});

test("a refusal (403) prints the server's reasons and fails pre-receive; a server error fails it naming the status", async () => {
  const h = await history();
  answer = { status: 403, body: 'dotgit: rejected refs/heads/main: protected\n' };
  const refused = await runHook('pre-receive', [], `${h.second} ${h.rewritten} refs/heads/main\n`, h.dir, { PATH: process.env.PATH! });
  expect(refused).toEqual({ code: 1, stderr: 'dotgit: rejected refs/heads/main: protected\n' });
  answer = { status: 500, body: '{"error":{}}' };
  const failed = await runHook('pre-receive', [], `${h.first} ${h.second} refs/heads/main\n`, h.dir, { PATH: process.env.PATH! });
  expect(failed).toEqual({ code: 1, stderr: 'dotgit: the server could not check this push (500)\n' });
});

test('an unreachable server fails the gate with curl\'s reason, and post-receive still exits 0', async () => {
  const h = await history();
  const env = { PATH: process.env.PATH!, DOTGIT_HOOK_URL: 'http://127.0.0.1:1/internal/hooks' };
  const gate = await runHook('pre-receive', [], `${h.first} ${h.second} refs/heads/main\n`, h.dir, env);
  expect(gate.code).toBe(1);
  expect(gate.stderr).toMatch(/^dotgit: the server could not check this push: curl: \(7\)/);
  const after = await runHook('post-receive', [], `${h.first} ${h.second} refs/heads/main\n`, h.dir, env);
  expect(after.code).toBe(0);
  expect(after.stderr).toMatch(/^dotgit: the server could not record this push: curl: \(7\)/);
});

test('reference-transaction: prepared gates; committed, aborted, other refs and states never call', async () => {
  const h = await history();
  const env = { PATH: await pathWithoutNode() };
  const line = `${h.first} ${h.second} refs/heads/main\n`;
  expect(await runHook('reference-transaction', ['prepared'], line + `${h.first} ${h.second} HEAD\n`, h.dir, env)).toEqual({ code: 0, stderr: '' });
  expect(seen.map((s) => [s.path, s.form.get('state'), s.form.get('updates')])).toEqual([['/internal/hooks/reference-transaction', 'prepared', line]]);
  answer = { status: 500, body: '' };
  expect((await runHook('reference-transaction', ['prepared'], line, h.dir, env)).code).toBe(1);
  seen.length = 0;
  answer = { status: 200, body: '' };
  // Post-receive records what moved and reconciliation judges the rest by the refs (ADR 0011).
  expect(await runHook('reference-transaction', ['committed'], line, h.dir, env)).toEqual({ code: 0, stderr: '' });
  expect(await runHook('reference-transaction', ['aborted'], line, h.dir, env)).toEqual({ code: 0, stderr: '' });
  expect((await runHook('reference-transaction', ['prepared'], `${h.first} ${h.second} refs/notes/x\n`, h.dir, env)).code).toBe(0);
  expect((await runHook('reference-transaction', ['begin'], line, h.dir, env)).code).toBe(0);
  expect(seen).toEqual([]);
});
