import { parsePipeline, PipelineSpecError, triggersOnPush } from '../../core/pipeline-spec';
import { applyInputs, cronProblem, InputValueError, resolveInputs } from '../../core/pipeline-triggers';

const file = (on: string, run = 'echo hi') => `on:\n${on}\njobs:\n  a:\n    steps:\n      - run: ${run}\n`;

describe('pipeline triggers (issue 17 items 6, 7)', () => {
  test('schedule entries are kept; a cron that does not parse fails with its line', () => {
    expect(parsePipeline(file('  schedule: [{ cron: "0 3 * * *" }, { cron: "*/15 * * * MON-FRI" }]')).on.schedule).toEqual([{ cron: '0 3 * * *' }, { cron: '*/15 * * * MON-FRI' }]);
    const bad = () => parsePipeline(file('  schedule:\n    - cron: "0 3 * * *"\n    - cron: "61 * * * *"'));
    expect(bad).toThrow(PipelineSpecError);
    expect(bad).toThrow(/pipeline\.yml:4:\d+: on\.schedule\.1\.cron: "61 \* \* \* \*" does not parse: .*minute/);
    expect(cronProblem('* * *')).toMatch(/five fields/);
    expect(cronProblem('0 0 * * * *')).toMatch(/five fields/);
    expect(cronProblem('@daily')).toBeUndefined();
  });

  test('a file with schedule or manual but no push starts no push runs; without on: every branch', () => {
    expect(triggersOnPush(parsePipeline(file('  schedule: [{ cron: "@daily" }]')), 'refs/heads/main')).toBe(false);
    expect(triggersOnPush(parsePipeline(file('  manual:')), 'refs/heads/main')).toBe(false);
    expect(triggersOnPush(parsePipeline(file('  push:\n  manual:')), 'refs/heads/main')).toBe(true);
    expect(triggersOnPush(parsePipeline('jobs:\n  a:\n    steps:\n      - run: x\n'), 'refs/heads/main')).toBe(true);
  });

  test('manual inputs: declarations checked, values validated naming the input, filled into run/env and INPUT_*', () => {
    const spec = parsePipeline(
      file(
        '  manual:\n    inputs:\n      level: { type: choice, options: [a, b], default: a }\n      dry: { type: boolean }\n      n: { type: number, required: true }\n      who: {}',
        '"echo ${{ inputs.level }} ${{ inputs.n }}"',
      ),
    );
    const inputs = spec.on.manual!.inputs;
    expect(resolveInputs(inputs, { n: 3 })).toEqual({ level: 'a', dry: 'false', n: '3', who: '' });
    expect(() => resolveInputs(inputs, {})).toThrow(new InputValueError('input "n" is required'));
    expect(() => resolveInputs(inputs, { n: 'x' })).toThrow('input "n" must be a number');
    expect(() => resolveInputs(inputs, { n: 1, level: 'c' })).toThrow('input "level" must be one of a, b');
    expect(() => resolveInputs(inputs, { n: 1, dry: 'yes' })).toThrow('input "dry" must be true or false');
    expect(() => resolveInputs(inputs, { n: 1, nope: 1 })).toThrow(/input "nope" is not declared/);
    const [job] = applyInputs(spec.jobs, resolveInputs(inputs, { n: '7', level: 'b' }));
    expect(job.steps[0].run).toBe('echo b 7');
    expect(job.steps[0].env).toMatchObject({ INPUT_LEVEL: 'b', INPUT_N: '7', INPUT_DRY: 'false' });
    expect(() => parsePipeline(file('  manual:\n    inputs:\n      x: { type: choice }'))).toThrow(/on\.manual\.inputs\.x: an input of type choice needs options/);
    expect(() => parsePipeline(file('  manual:\n    inputs:\n      x: { type: number, default: abc }'))).toThrow(/on\.manual\.inputs\.x\.default: the default must be a number/);
    expect(() => parsePipeline(file('  manual:', '"echo ${{ inputs.nope }}"'))).toThrow(/jobs\.a\.steps\.0\.run: \$\{\{ inputs\.nope \}\}: no input "nope" is declared/);
  });

  test('id-token on jobs and environments; requires: [pipeline]', () => {
    const spec = parsePipeline(
      'jobs:\n  a:\n    id-token: true\n    steps: [{ run: x }]\n  b:\n    id-token: { audience: sts.example.com }\n    steps: [{ run: x }]\n  c:\n    steps: [{ run: x }]\n' +
        'environments:\n  prod:\n    requires: [pipeline]\n    id-token: { audience: [x, y] }\n    deploy: [{ run: x }]\n',
    );
    expect(spec.jobs.map((j) => j.idToken)).toEqual([{}, { audience: ['sts.example.com'] }, undefined]);
    expect(spec.environments?.[0]).toMatchObject({ requires: ['pipeline'], idToken: { audience: ['x', 'y'] } });
    expect(() => parsePipeline('jobs:\n  a:\n    id-token: { audience: "a b" }\n    steps: [{ run: x }]\n')).toThrow(/jobs\.a\.id-token/);
    expect(() => parsePipeline('jobs:\n  a:\n    steps: [{ run: x }]\nenvironments:\n  p:\n    requires: [tests]\n    deploy: [{ run: x }]\n')).toThrow(/environments\.p\.requires\.0/);
  });
});
