import os from 'node:os';
import { NoneDriver } from '../../activities/sandbox/none-driver';
import type { SandboxRunOptions } from '../../activities/sandbox/sandbox-driver';
import { withStartSignal } from '../../activities/sandbox/start-signal';

// The step's shell signals its own start (ADR 0028): a marker line on stderr, taken out of the
// output. Run through the `none` driver's real /bin/sh: the same script every driver runs.

async function run(command: string) {
  const lines: string[] = [];
  let started = 0;
  const options: SandboxRunOptions = { workspace: os.tmpdir(), command, env: {}, timeoutMs: 10_000, onLine: (stream, line) => lines.push(`${stream}: ${line}`) };
  const result = await new NoneDriver().run(withStartSignal(options, () => started++));
  return { lines, started, exitCode: result.exitCode };
}

test("the command's start is signalled once and the marker never reaches the step's output", async () => {
  const { lines, started, exitCode } = await run('echo out\necho err >&2\nexit 3');
  expect(started).toBe(1);
  // Two pipes: their lines' order against each other is the reader's luck (CI under load: stderr first).
  expect([...lines].sort()).toEqual(['stderr: err', 'stdout: out']);
  expect(exitCode).toBe(3);
});

test("the script's line numbers stay the user's (the marker shares its first line)", async () => {
  const { lines, started } = await run('true\ntrue\nno-such-command-here');
  expect(started).toBe(1);
  expect(lines.some((l) => /^stderr: .*\b3\b.*no-such-command-here/.test(l))).toBe(true);
});

test('stderr written before the marker (the sandbox program itself) is kept; a line like the marker is not taken for it', () => {
  const seen: string[] = [];
  let started = 0;
  const wrapped = withStartSignal({ workspace: '/', command: 'true', env: {}, timeoutMs: 1, onLine: (s, l) => seen.push(`${s}: ${l}`) }, () => started++);
  const marker = /printf '%s\\n' (\S+) >&2; true$/.exec(wrapped.command)![1];
  wrapped.onLine('stderr', 'runsc: a warning');
  wrapped.onLine('stderr', 'dotgit-sandbox-started-000000000000000000000000');
  wrapped.onLine('stderr', marker);
  wrapped.onLine('stderr', marker); // the user's own echo of it later is output like any other
  expect(started).toBe(1);
  expect(seen).toEqual(['stderr: runsc: a warning', 'stderr: dotgit-sandbox-started-000000000000000000000000', `stderr: ${marker}`]);
});
