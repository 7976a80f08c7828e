import { matchesPattern, parsePipeline, PipelineSpecError, triggersOnPush } from '../../core/pipeline-spec';

const errorOf = (text: string): PipelineSpecError => {
  try {
    parsePipeline(text);
  } catch (err) {
    if (err instanceof PipelineSpecError) return err;
    throw err;
  }
  throw new Error('expected a PipelineSpecError');
};

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
