import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { shellArgv } from '../../activities/sandbox/sandbox-driver';

// The exit record is written by the step's own sandbox the moment its command ends (ADR 0046): a
// worker lost before it heard the status learns from it that the command finished.

let dir: string;
beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'exit-record-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function run(command: string, tag = 'call-1') {
  const [shell, ...args] = shellArgv({ command, exitRecord: { file: '.exit', tag } });
  const r = spawnSync(shell, args, { cwd: dir, encoding: 'utf8' });
  const file = path.join(dir, '.exit');
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, record: statSync(file, { throwIfNoEntry: false })?.isFile() ? readFileSync(file, 'utf8') : undefined };
}

test('without an exit record the command runs as sh -e -c, unchanged', () => {
  expect(shellArgv({ command: 'make test' })).toEqual(['/bin/sh', '-e', '-c', 'make test']);
});

test('the record holds the tag and the exit status; the shell exits with the same status', () => {
  expect(run('echo hello')).toMatchObject({ status: 0, stdout: 'hello\n', record: 'call-1 0\n' });
  expect(run('echo out; exit 3', 'call-2')).toMatchObject({ status: 3, stdout: 'out\n', record: 'call-2 3\n' });
});

test('the command keeps sh -e: a failing line ends it, and the record says so', () => {
  expect(run('false\necho never')).toMatchObject({ status: 1, stdout: '', record: 'call-1 1\n' });
});

test('the command is data, never spliced into the wrapper', () => {
  const r = run(`echo "$1|$2|$3" '"; exit 9; "'`);
  expect(r).toMatchObject({ status: 0, stdout: '|| "; exit 9; "\n', record: 'call-1 0\n' });
});

test('a command that moves elsewhere still has its record written in its starting directory', () => {
  expect(run('mkdir sub && cd sub && exit 4')).toMatchObject({ status: 4, record: 'call-1 4\n' });
});

test('a record the command cannot write costs no error line and keeps its status', () => {
  const r = run('mkdir .exit; exit 5');
  expect(r).toMatchObject({ status: 5, stderr: '', record: undefined });
});
