import { matchesPattern, parsePipeline, triggersOnPush } from '../../core/pipeline-spec';
import { pipelineErrorOf } from '../helpers/pipeline';

const errorOf = pipelineErrorOf;

test('parses the CONTRACT example shape with defaults filled in', () => {
  const spec = parsePipeline(`
on:
  push:
    branches: [main, "release/*"]
jobs:
  build:
    steps:
      - name: compile
        run: make
    artifacts: [out/build.txt]
  test:
    needs: [build]
    steps:
      - name: unit
        run: ./scripts/test.sh
        timeout: 5m
        retry: 2
        env: { LEVEL: debug, N: 3 }
    secrets: [NPM_TOKEN]
environments:
  production:
    approval: true
    deploy:
      - run: ./scripts/deploy.sh
    rollback:
      - run: ./scripts/rollback.sh
`);
  expect(spec.environments).toEqual([
    {
      name: 'production',
      approval: true,
      deploy: [{ name: 'step-1', run: './scripts/deploy.sh', env: {}, timeoutMs: undefined, retry: 0 }],
      rollback: [{ name: 'step-1', run: './scripts/rollback.sh', env: {}, timeoutMs: undefined, retry: 0 }],
      secrets: [],
      network: 'none',
    },
  ]);
  expect(spec.jobs.map((j) => j.name)).toEqual(['build', 'test']);
  expect(spec.jobs[1]).toEqual({
    name: 'test',
    needs: ['build'],
    steps: [{ name: 'unit', run: './scripts/test.sh', env: { LEVEL: 'debug', N: '3' }, timeoutMs: 300_000, retry: 2 }],
    artifacts: [],
    secrets: ['NPM_TOKEN'],
    network: 'none',
  });
  expect(spec.jobs[0].steps[0].retry).toBe(0);
});

test('an unknown key is reported with its line and column', () => {
  const e = errorOf('jobs:\n  a:\n    steps:\n      - name: x\n        rn: echo\n');
  expect(e.message).toMatch(/^\.dotgit\/pipeline\.yml:4:9: jobs\.a\.steps\.0: .*rn/);
  expect(e.line).toBe(4);
});

test('YAML syntax errors name the line', () => {
  const e = errorOf('jobs:\n  a: [\n');
  expect(e.message).toMatch(/pipeline\.yml:\d+:\d+:/);
});

test('unknown needs and cycles are refused', () => {
  expect(errorOf('jobs:\n  a:\n    needs: [zz]\n    steps: [{run: x}]\n').message).toMatch(/:3:\d+: jobs\.a\.needs\.0: unknown job "zz"/);
  expect(errorOf('jobs:\n  a:\n    needs: [b]\n    steps: [{run: x}]\n  b:\n    needs: [a]\n    steps: [{run: x}]\n').message).toMatch(/cycle/);
});

test('artifact paths must stay inside the workspace', () => {
  expect(errorOf('jobs:\n  a:\n    steps: [{run: x}]\n    artifacts: [../etc/passwd]\n').message).toMatch(/artifacts\.0/);
  expect(errorOf('jobs:\n  a:\n    steps: [{run: x}]\n    artifacts: [/etc/passwd]\n').message).toMatch(/artifacts\.0/);
});

test('bad durations, empty runs and bad env names are refused', () => {
  expect(errorOf('jobs:\n  a:\n    steps: [{run: x, timeout: soon}]\n').message).toMatch(/timeout/);
  expect(errorOf('jobs:\n  a:\n    steps: [{run: ""}]\n').message).toMatch(/run/);
  expect(errorOf('jobs:\n  a:\n    steps: [{run: x, env: {"1BAD": y}}]\n').message).toMatch(/env/);
});

test('branch filters: default every branch and no tag; globs', () => {
  const all = parsePipeline('jobs:\n  a:\n    steps: [{run: x}]\n');
  expect(triggersOnPush(all, 'refs/heads/feature/x')).toBe(true);
  expect(triggersOnPush(all, 'refs/tags/v1')).toBe(false);
  const some = parsePipeline('on:\n  push:\n    branches: [main, "release/*"]\n    tags: ["v*"]\njobs:\n  a:\n    steps: [{run: x}]\n');
  expect(triggersOnPush(some, 'refs/heads/main')).toBe(true);
  expect(triggersOnPush(some, 'refs/heads/release/1.0')).toBe(true);
  expect(triggersOnPush(some, 'refs/heads/release/1.0/hotfix')).toBe(false);
  expect(triggersOnPush(some, 'refs/heads/dev')).toBe(false);
  expect(triggersOnPush(some, 'refs/tags/v2.1')).toBe(true);
  expect(matchesPattern('a/**', 'a/b/c')).toBe(true);
  expect(matchesPattern('a.b', 'aXb')).toBe(false);
});

test('glob matching is linear: a pathological pattern answers at once', () => {
  const pattern = '**a**a**a**a**a**a**a**a**a**a**a**a**b';
  expect(matchesPattern(pattern, 'a'.repeat(200))).toBe(false);
  expect(matchesPattern(pattern, `${'a'.repeat(30)}b`)).toBe(true);
  expect(matchesPattern('release/*', 'release/')).toBe(true);
  expect(matchesPattern('*', '')).toBe(true);
  expect(matchesPattern('feat-*', 'feat-x/y')).toBe(false);
  expect(matchesPattern('**', 'a/b/c')).toBe(true);
}, 10_000); // a backtracking matcher would not finish in time (it took minutes on this input)

test('limits: step timeouts above 2h, too many jobs, step names with "/" are refused', () => {
  expect(errorOf('jobs:\n  a:\n    steps: [{run: x, timeout: 600h}]\n').message).toMatch(/timeout: at most 2h/);
  const many = Array.from({ length: 101 }, (_, i) => `  j${i}:\n    steps: [{run: x}]\n`).join('');
  expect(errorOf(`jobs:\n${many}`).message).toMatch(/at most 100 jobs/);
  expect(errorOf('jobs:\n  a:\n    steps: [{name: "a/b", run: x}]\n').message).toMatch(/name/);
});

test('environments: deploy steps are required, keys are checked, step names are unique', () => {
  expect(errorOf('jobs:\n  a:\n    steps: [{run: x}]\nenvironments:\n  prod:\n    approval: true\n').message).toMatch(/:\d+:\d+: environments\.prod\.deploy: /);
  expect(errorOf('jobs:\n  a:\n    steps: [{run: x}]\nenvironments:\n  prod:\n    deploy: [{run: x}]\n    aproval: true\n').message).toMatch(/environments\.prod.*aproval/);
  expect(errorOf('jobs:\n  a:\n    steps: [{run: x}]\nenvironments:\n  "bad name":\n    deploy: [{run: x}]\n').message).toMatch(/environment names/);
  expect(errorOf('jobs:\n  a:\n    steps: [{run: x}]\nenvironments:\n  prod:\n    deploy: [{name: d, run: x}, {name: d, run: y}]\n').message).toMatch(/environments\.prod\.deploy\.1\.name: duplicate step name "d"/);
  const none = parsePipeline('jobs:\n  a:\n    steps: [{run: x}]\n');
  expect(none.environments).toBeUndefined();
});

// Hostile files (issue 10, defects 2 and 9): every problem is a PipelineSpecError naming the line.

/** The classic billion-laughs bomb: nine aliases per level, nine levels deep. */
const aliasBomb = () => {
  const lines = ['x0: &a0 "lol"'];
  for (let i = 1; i <= 9; i++) lines.push(`x${i}: &a${i} [${Array(9).fill(`*a${i - 1}`).join(', ')}]`);
  return `${lines.join('\n')}\njobs:\n  a:\n    steps: [{run: x}]\n`;
};

test('an alias bomb is refused at once, naming the line of the alias that goes too far', () => {
  // Expanded, it would be 9^9 nodes: a parser that followed it would not come back within the test's timeout.
  const e = errorOf(aliasBomb());
  expect(e.message).toMatch(/^\.dotgit\/pipeline\.yml:\d+:\d+: .*alias/);
  expect(e.line).toBeGreaterThan(1);
  expect(e.line).toBeLessThanOrEqual(10);
});

test('an alias whose anchor is not defined before it names the alias and its line', () => {
  const e = errorOf('jobs:\n  a:\n    steps: [{run: *nope}]\n');
  expect(e.message).toMatch(/^\.dotgit\/pipeline\.yml:3:19: .*\*nope/);
  expect(e.line).toBe(3);
  const later = errorOf('jobs:\n  a:\n    steps: [{run: *x}]\nx: &x echo\n');
  expect(later.message).toMatch(/:3:\d+: .*\*x/);
});

test('an alias inside the node it names is refused', () => {
  expect(errorOf('jobs: &j\n  a:\n    steps: [{run: x}]\n  b: *j\n').message).toMatch(/:4:\d+: .*\*j.*contains it/);
});

test('anchors and aliases still work within the limits', () => {
  const spec = parsePipeline('jobs:\n  a:\n    steps: &common\n      - run: make\n        env: &env { LEVEL: debug }\n  b:\n    steps: *common\n  c:\n    steps: [{run: test, env: *env}]\n');
  expect(spec.jobs.map((j) => [j.name, j.steps[0].run, j.steps[0].env])).toEqual([
    ['a', 'make', { LEVEL: 'debug' }],
    ['b', 'make', { LEVEL: 'debug' }],
    ['c', 'test', { LEVEL: 'debug' }],
  ]);
});

test('too many anchors or aliases are refused with a line', () => {
  const anchors = Array.from({ length: 101 }, (_, i) => `  - &a${i} x`).join('\n');
  expect(errorOf(`jobs:\n  a:\n    steps: [{run: x}]\nlist:\n${anchors}\n`).message).toMatch(/:105:\d+: .*at most 100 anchors/);
  const aliases = Array.from({ length: 1001 }, () => '*s').join(', ');
  expect(errorOf(`s: &s x\nlist: [${aliases}]\njobs:\n  a:\n    steps: [{run: x}]\n`).message).toMatch(/:2:\d+: .*at most 1000 aliases/);
});

test('aliases may not blow a file up past the expanded-size limit', () => {
  const big = 'y'.repeat(60 * 1024);
  const e = errorOf(`s: &s "${big}"\nl: [*s, *s, *s, *s, *s, *s, *s, *s, *s, *s]\njobs:\n  a:\n    steps: [{run: x}]\n`);
  expect(e.message).toMatch(/:2:\d+: .*512 KiB/);
});

test('deep nesting is refused at its line, quickly, without overflowing the stack', () => {
  const started = Date.now();
  const flow = errorOf(`jobs:\n  a:\n    steps: [{run: x}]\nx: ${'['.repeat(50_000)}${']'.repeat(50_000)}\n`);
  expect(flow.message).toMatch(/^\.dotgit\/pipeline\.yml:4:\d+: .*nest.*at most 32/);
  const block = errorOf(`jobs:\n  a:\n    steps: [{run: x}]\nx:\n${Array.from({ length: 40 }, (_, i) => `${' '.repeat(i + 1)}k:`).join('\n')} 1\n`);
  expect(block.message).toMatch(/:\d+:\d+: .*nest/);
  expect(block.line).toBeGreaterThan(30);
  expect(Date.now() - started).toBeLessThan(5000); // ~1.3 s on the shared 2-core machine, mostly the YAML lexer
});

test('only one YAML document: a second one is refused at its line', () => {
  expect(errorOf('jobs:\n  a:\n    steps: [{run: x}]\n---\njobs: {}\n').message).toMatch(/^\.dotgit\/pipeline\.yml:4:1: .*one YAML document/);
});

test('YAML syntax errors name their real line, not line 1', () => {
  const e = errorOf('jobs:\n  a:\n    steps:\n      - run: "unterminated\n');
  expect(e.line).toBeGreaterThanOrEqual(4);
  expect(e.message).toMatch(new RegExp(`^\\.dotgit/pipeline\\.yml:${e.line}:\\d+: `));
  expect(errorOf('jobs:\n  a:\n    steps: [{run: x}]\n  a:\n    steps: [{run: y}]\n').message).toMatch(/^\.dotgit\/pipeline\.yml:4:\d+: Map keys must be unique/);
});

test('odd YAML types and tags are refused as PipelineSpecErrors, never other errors', () => {
  for (const text of [
    'jobs:\n  a:\n    steps: [{run: !!binary aGVsbG8=}]\n',
    'jobs: !!set {a}\n',
    'jobs:\n  a:\n    steps: [{run: x, retry: 1e400}]\n',
    'jobs:\n  a:\n    steps: [{run: x, timeout: 99999999999999999999999h}]\n',
    'jobs:\n  ? [a]\n  : {steps: [{run: x}]}\n',
    '<<: {jobs: {}}\n',
    '\u0000',
    '',
    'jobs: ~\n',
    '- a\n',
  ]) expect(errorOf(text).message).toMatch(/^\.dotgit\/pipeline\.yml:\d+:\d+: /);
});

test('job and environment names that JavaScript objects carry are refused, never dropped', () => {
  for (const name of ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty']) {
    const e = errorOf(`jobs:\n  ok:\n    steps: [{run: x}]\n  ${name}:\n    steps: [{run: x}]\n`);
    expect(e.message).toMatch(new RegExp(`^\\.dotgit/pipeline\\.yml:4:3: jobs\\.${name}: .*reserved`));
  }
  expect(errorOf('jobs:\n  a:\n    steps: [{run: x}]\nenvironments:\n  constructor:\n    deploy: [{run: x}]\n').message).toMatch(/:5:3: environments\.constructor: .*reserved/);
  expect(errorOf('jobs:\n  a:\n    steps: [{run: x, env: {__proto__: y}}]\n').message).toMatch(/:3:\d+: .*__proto__/);
  expect(errorOf('jobs:\n  a:\n    steps:\n      - {run: x}\n__proto__: {jobs: {}}\n').message).toMatch(/:5:1: .*__proto__/);
});

test('control characters in commands and env values are refused; tab and newline are fine', () => {
  expect(errorOf('jobs:\n  a:\n    steps:\n      - run: "echo ok\\0rm -rf /"\n').message).toMatch(/^\.dotgit\/pipeline\.yml:4:\d+: jobs\.a\.steps\.0\.run: .*control character/);
  expect(errorOf('jobs:\n  a:\n    steps: [{run: "echo \\e[31m"}]\n').message).toMatch(/run: .*control character/);
  expect(errorOf('jobs:\n  a:\n    steps: [{run: x, env: {A: "a\\0b"}}]\n').message).toMatch(/env\.A: .*control character/);
  expect(errorOf('jobs:\n  a:\n    steps: [{run: x}]\n    artifacts: ["out\\0x"]\n').message).toMatch(/artifacts\.0: .*control character/);
  const ok = parsePipeline('jobs:\n  a:\n    steps: [{run: "a\\tb\\nc", env: {A: "x\\ty\\nz"}}]\n');
  expect(ok.jobs[0].steps[0]).toMatchObject({ run: 'a\tb\nc', env: { A: 'x\ty\nz' } });
});

test('a step timeout must be at least 1s and at most 2h', () => {
  for (const t of ['0s', '0', '0ms', '999ms', '0h', '-5'])
    expect(errorOf(`jobs:\n  a:\n    steps: [{run: x, timeout: ${t}}]\n`).message).toMatch(/:3:\d+: jobs\.a\.steps\.0\.timeout: /);
  expect(errorOf('jobs:\n  a:\n    steps: [{run: x, timeout: 0s}]\n').message).toMatch(/at least 1s/);
  expect(errorOf('jobs:\n  a:\n    steps: [{run: x, timeout: 121m}]\n').message).toMatch(/at most 2h/);
  expect(parsePipeline('jobs:\n  a:\n    steps: [{run: x, timeout: 1s}]\n').jobs[0].steps[0].timeoutMs).toBe(1000);
  expect(parsePipeline('jobs:\n  a:\n    steps: [{run: x, timeout: 2h}]\n').jobs[0].steps[0].timeoutMs).toBe(7_200_000);
});

test('retry, steps, needs, env and lists are bounded and checked', () => {
  const fails = (text: string, re: RegExp) => expect(errorOf(text).message).toMatch(re);
  fails('jobs:\n  a:\n    steps: [{run: x, retry: -1}]\n', /steps\.0\.retry: /);
  fails('jobs:\n  a:\n    steps: [{run: x, retry: 11}]\n', /steps\.0\.retry: /);
  fails('jobs:\n  a:\n    steps: [{run: x, retry: 1.5}]\n', /steps\.0\.retry: /);
  fails('jobs:\n  a:\n    steps: []\n', /jobs\.a\.steps: a job needs at least one step/);
  fails('jobs: {}\n', /jobs: .*at least one job/);
  fails('jobs:\n  a:\n    steps: [{run: x, env: {"A-B": y}}]\n', /env/);
  fails('jobs:\n  a:\n    steps: [{run: x, env: {"": y}}]\n', /env/);
  fails(`jobs:\n  a:\n    steps: [{run: x, env: {${Array.from({ length: 101 }, (_, i) => `V${i}: x`).join(', ')}}}]\n`, /env: at most 100/);
  fails('jobs:\n  a:\n    steps: [{name: s, run: x}, {name: s, run: y}]\n', /steps\.1\.name: duplicate step name "s"/);
  fails('jobs:\n  a:\n    steps: [{name: step-2, run: x}, {run: y}]\n', /steps\.1.*duplicate step name "step-2"/);
  fails('jobs:\n  a:\n    steps: [{run: x}]\n  b:\n    needs: [a, a]\n    steps: [{run: x}]\n', /:5:\d+: jobs\.b\.needs\.1: "a" is listed twice/);
  fails('jobs:\n  a:\n    needs: [a]\n    steps: [{run: x}]\n', /cycle/);
  fails(`jobs:\n  a:\n    steps: [{run: x}]\n    artifacts: [${Array.from({ length: 101 }, (_, i) => `f${i}`).join(', ')}]\n`, /artifacts: at most 100/);
  fails(`jobs:\n  a:\n    steps: [{run: x}]\n    secrets: [${Array.from({ length: 101 }, (_, i) => `S${i}`).join(', ')}]\n`, /secrets: at most 100/);
});

test('an unknown tag or an empty file is refused, not read as something else', () => {
  expect(errorOf('jobs:\n  a:\n    steps:\n      - run: !!js/function "function () {}"\n').message).toMatch(/^\.dotgit\/pipeline\.yml:4:14: .*tag.*js\/function/);
  expect(errorOf('').message).toMatch(/^\.dotgit\/pipeline\.yml:1:1: the file is empty/);
  expect(errorOf('# only a comment\n').message).toMatch(/:1:1: the file is empty/);
});

test('a file with CRLF line ends still parses: YAML folds the carriage returns away, so none reaches a command', () => {
  const spec = parsePipeline('jobs:\r\n  a:\r\n    steps:\r\n      - run: |\r\n          echo a\r\n          echo b\r\n        env: {A: "x"}\r\n');
  expect(spec.jobs[0].steps[0]).toMatchObject({ run: 'echo a\necho b\n', env: { A: 'x' } });
});
