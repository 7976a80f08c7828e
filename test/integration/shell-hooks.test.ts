import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { serveHookChannel, type HookAnswer, type HookRequest } from '../../git-server/hook-channel';
import { git, localRepo, tempDir } from '../helpers/git';

// The per-push hooks are plain shell (issue 16: no Node start, ADR 0047: no curl either). These run
// the real hook scripts, with real sh and git, on fd 3 served by the git-server's own channel code
// (git-server/hook-channel.ts) with a stand-in handler that records what it was sent: the wire
// format and the exit codes.

const HOOKS = path.resolve(__dirname, '../../git-server/hooks');

let seen: HookRequest[] = [];
let answer: HookAnswer = { verdict: 'ok', messages: [] };
beforeEach(() => {
  seen = [];
  answer = { verdict: 'ok', messages: [] };
});

/** A PATH with sh, git and the tools the scripts use, but neither node nor curl: a hook that needs them fails. */
async function bareShellPath(): Promise<string> {
  const dir = tempDir('dotgit-shellonly-');
  for (const tool of ['sh', 'git', 'grep', 'head', 'tail', 'printf', 'cat']) {
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

/** Runs a hook as receive-pack would under the git-server: fd 3 is the channel (unless `channel` is 'none'). */
function runHook(hook: string, args: string[], stdin: string, cwd: string, env: Record<string, string>, channel: 'served' | 'silent' | 'none' = 'served'): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(HOOKS, hook), args, {
      cwd,
      env: { ...(channel === 'none' ? {} : { DOTGIT_HOOK_FD: '3' }), ...env },
      stdio: ['pipe', 'pipe', 'pipe', channel === 'none' ? 'ignore' : 'pipe'],
    });
    if (channel === 'served') {
      serveHookChannel(child.stdio[3] as Duplex, async (request) => {
        seen.push(request);
        return answer;
      });
    } else if (channel === 'silent') {
      // A git-server that dies with the request unanswered: the channel ends.
      (child.stdio[3] as Duplex).once('data', () => (child.stdio[3] as Duplex).destroy());
    }
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      (child.stdio[3] as Duplex | null)?.destroy();
      // stderr may still be in flight when 'exit' fires; 'close' waits for it but also for fd 3.
      setTimeout(() => resolve({ code: code ?? -1, stderr }), 50);
    });
    // A hook may exit without reading its input (a state it ignores), as git allows: EPIPE is not an error.
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(stdin);
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

test('pre-receive sends each update with its fast-forward verdict and the push options byte for byte, with neither Node nor curl', async () => {
  const h = await history();
  const zero = '0'.repeat(40);
  const options = ['ci.skip', 'a "quoted" value & more=1', 'ünïcode\tand tab', '%41 not decoded twice', '$HOME `x` \\n'];
  const env: Record<string, string> = { PATH: await bareShellPath(), GIT_PUSH_OPTION_COUNT: String(options.length) };
  options.forEach((o, i) => (env[`GIT_PUSH_OPTION_${i}`] = o));
  answer = { verdict: 'ok', messages: ['dotgit: looks fine'] };
  const stdin = [`${h.first} ${h.second} refs/heads/main`, `${h.second} ${h.rewritten} refs/heads/rewritten`, `${zero} ${h.first} refs/heads/new`, `${h.first} ${zero} refs/heads/gone`].join('\n') + '\n';
  const r = await runHook('pre-receive', [], stdin, h.dir, env);
  expect(r).toEqual({ code: 0, stderr: 'dotgit: looks fine\n' });
  expect(seen).toEqual([
    {
      hook: 'pre-receive',
      pushOptions: options,
      updates: [
        { oldSha: h.first, newSha: h.second, ref: 'refs/heads/main', nonFastForward: false },
        { oldSha: h.second, newSha: h.rewritten, ref: 'refs/heads/rewritten', nonFastForward: true },
        { oldSha: zero, newSha: h.first, ref: 'refs/heads/new', nonFastForward: false },
        { oldSha: h.first, newSha: zero, ref: 'refs/heads/gone', nonFastForward: false },
      ],
    },
  ]);
});

test("a refusal prints the server's reasons and fails pre-receive; a server error fails it naming the status", async () => {
  const h = await history();
  const env = { PATH: await bareShellPath() };
  answer = { verdict: 'deny', messages: ['dotgit: rejected refs/heads/main: protected', 'dotgit: and a second line'] };
  const refused = await runHook('pre-receive', [], `${h.second} ${h.rewritten} refs/heads/main\n`, h.dir, env);
  expect(refused).toEqual({ code: 1, stderr: 'dotgit: rejected refs/heads/main: protected\ndotgit: and a second line\n' });
  answer = { verdict: 'error', status: 503, messages: [] };
  const failed = await runHook('pre-receive', [], `${h.first} ${h.second} refs/heads/main\n`, h.dir, env);
  expect(failed).toEqual({ code: 1, stderr: 'dotgit: the server could not check this push (503)\n' });
  // post-receive only records: an error is reported, the hook still exits 0 (the refs have moved).
  const after = await runHook('post-receive', [], `${h.first} ${h.second} refs/heads/main\n`, h.dir, env);
  expect(after).toEqual({ code: 0, stderr: 'dotgit: the server could not record this push (503)\n' });
});

test('a git-server that does not answer, or no channel at all, fails the gates; post-receive still exits 0', async () => {
  const h = await history();
  const env = { PATH: await bareShellPath() };
  const line = `${h.first} ${h.second} refs/heads/main\n`;
  expect(await runHook('pre-receive', [], line, h.dir, env, 'silent')).toEqual({ code: 1, stderr: 'dotgit: the server could not check this push: the git-server did not answer\n' });
  expect(await runHook('reference-transaction', ['prepared'], line, h.dir, env, 'silent')).toMatchObject({ code: 1 });
  expect(await runHook('post-receive', [], line, h.dir, env, 'silent')).toEqual({ code: 0, stderr: 'dotgit: the server could not record this push: the git-server did not answer\n' });
  expect(await runHook('pre-receive', [], line, h.dir, env, 'none')).toEqual({ code: 1, stderr: 'dotgit: the server could not check this push: no channel to the git-server\n' });
  expect(await runHook('post-receive', [], line, h.dir, env, 'none')).toEqual({ code: 0, stderr: 'dotgit: the server could not record this push: no channel to the git-server\n' });
});

test('reference-transaction: prepared gates, aborted records; committed, other refs and states never call', async () => {
  const h = await history();
  const env = { PATH: await bareShellPath() };
  const line = `${h.first} ${h.second} refs/heads/main\n`;
  expect(await runHook('reference-transaction', ['prepared'], line + `${h.first} ${h.second} HEAD\n`, h.dir, env)).toEqual({ code: 0, stderr: '' });
  expect(seen).toEqual([{ hook: 'reference-transaction', state: 'prepared', pushOptions: [], updates: [{ oldSha: h.first, newSha: h.second, ref: 'refs/heads/main', nonFastForward: false }] }]);
  answer = { verdict: 'error', status: 500, messages: [] };
  expect((await runHook('reference-transaction', ['prepared'], line, h.dir, env)).code).toBe(1);
  seen = [];
  answer = { verdict: 'ok', messages: [] };
  // Post-receive records what moved (ADR 0047).
  expect(await runHook('reference-transaction', ['committed'], line, h.dir, env)).toEqual({ code: 0, stderr: '' });
  expect(seen).toEqual([]);
  // Aborted updates are marked at once; the refs did not move, so a failure to say so fails nothing.
  expect(await runHook('reference-transaction', ['aborted'], line, h.dir, env)).toEqual({ code: 0, stderr: '' });
  expect(seen).toEqual([{ hook: 'reference-transaction', state: 'aborted', pushOptions: [], updates: [{ oldSha: h.first, newSha: h.second, ref: 'refs/heads/main', nonFastForward: false }] }]);
  answer = { verdict: 'error', status: 503, messages: [] };
  expect(await runHook('reference-transaction', ['aborted'], line, h.dir, env)).toEqual({ code: 0, stderr: 'dotgit: the server could not record this push (503)\n' });
  seen = [];
  answer = { verdict: 'ok', messages: [] };
  expect((await runHook('reference-transaction', ['prepared'], `${h.first} ${h.second} refs/notes/x\n`, h.dir, env)).code).toBe(0);
  expect((await runHook('reference-transaction', ['begin'], line, h.dir, env)).code).toBe(0);
  expect(seen).toEqual([]);
});

test('a push option with a newline (git refuses to send one, a hand-made request need not) is refused before anything is sent', async () => {
  const h = await history();
  const env = { PATH: await bareShellPath(), GIT_PUSH_OPTION_COUNT: '2', GIT_PUSH_OPTION_0: 'ci.skip', GIT_PUSH_OPTION_1: 'x\nend\nhook pre-receive\nend' };
  const line = `${h.first} ${h.second} refs/heads/main\n`;
  expect(await runHook('pre-receive', [], line, h.dir, env)).toEqual({ code: 1, stderr: 'dotgit: push options may not contain a newline\n' });
  expect(await runHook('post-receive', [], line, h.dir, env)).toEqual({ code: 0, stderr: 'dotgit: push options may not contain a newline\n' });
  expect(seen).toEqual([]);
});
