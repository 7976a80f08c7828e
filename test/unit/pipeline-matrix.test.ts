import { expandMatrix, instanceName, MAX_MATRIX_COMBINATIONS, parseOutputFile, resolveOutputs } from '../../core/pipeline-matrix';
import { parsePipeline } from '../../core/pipeline-spec';
import { pipelineErrorOf } from '../helpers/pipeline';

const errorOf = pipelineErrorOf;

describe('expandMatrix (GitHub Actions semantics)', () => {
  test('the product of the axes, first axis outermost, minus what exclude matches', () => {
    expect(expandMatrix({ axes: { node: ['18', '20'], db: ['pg', 'sqlite'] }, include: [], exclude: [{ node: '18', db: 'sqlite' }] })).toEqual([
      { node: '18', db: 'pg' },
      { node: '20', db: 'pg' },
      { node: '20', db: 'sqlite' },
    ]);
  });

  test('a partial exclude entry removes every combination it matches', () => {
    expect(expandMatrix({ axes: { os: ['a', 'b'], node: ['1', '2'] }, include: [], exclude: [{ os: 'a' }] })).toEqual([
      { os: 'b', node: '1' },
      { os: 'b', node: '2' },
    ]);
  });

  test('include extends the combinations it matches without overwriting axis values, else adds its own', () => {
    const combos = expandMatrix({
      axes: { fruit: ['apple', 'pear'], animal: ['cat', 'dog'] },
      include: [{ color: 'green' }, { color: 'pink', animal: 'cat' }, { fruit: 'apple', shape: 'circle' }, { fruit: 'banana' }, { fruit: 'banana', animal: 'cat' }],
      exclude: [],
    });
    // GitHub's documented example, same answer.
    expect(combos).toEqual([
      { fruit: 'apple', animal: 'cat', color: 'pink', shape: 'circle' },
      { fruit: 'apple', animal: 'dog', color: 'green', shape: 'circle' },
      { fruit: 'pear', animal: 'cat', color: 'pink' },
      { fruit: 'pear', animal: 'dog', color: 'green' },
      { fruit: 'banana' },
      { fruit: 'banana', animal: 'cat' },
    ]);
  });

  test('exclude applies before include: an included combination is not excluded', () => {
    expect(expandMatrix({ axes: { n: ['1', '2'] }, include: [{ n: '1' }], exclude: [{ n: '1' }] })).toEqual([{ n: '2' }, { n: '1' }]);
  });

  test('only include entries: each is a combination', () => {
    expect(expandMatrix({ axes: {}, include: [{ a: 'x' }, { a: 'y', b: 'z' }], exclude: [] })).toEqual([{ a: 'x' }, { a: 'y', b: 'z' }]);
  });

  test('too many combinations, an empty axis, everything excluded: refused', () => {
    const many = Array.from({ length: 17 }, (_, i) => String(i));
    expect(() => expandMatrix({ axes: { a: many, b: many }, include: [], exclude: [] })).toThrow(`at most ${MAX_MATRIX_COMBINATIONS}`);
    expect(() => expandMatrix({ axes: { a: [] }, include: [], exclude: [] })).toThrow('axis "a" has no values');
    expect(() => expandMatrix({ axes: { a: ['1'] }, include: [], exclude: [{ a: '1' }] })).toThrow('no combinations left');
    // 16 × 16 is exactly the cap.
    expect(expandMatrix({ axes: { a: many.slice(0, 16), b: many.slice(0, 16) }, include: [], exclude: [] })).toHaveLength(256);
  });

  test('instance names show the values; "/" becomes "-"', () => {
    expect(instanceName('test', { node: '18', db: 'pg' })).toBe('test (18, pg)');
    expect(instanceName('test', { os: 'ubuntu/22.04' })).toBe('test (ubuntu-22.04)');
  });
});

describe('outputs', () => {
  test('key=value lines and the key<<DELIM form; later keys win; bad lines are reported', () => {
    const { outputs, problems } = parseOutputFile('version=1.2.3\nempty=\nnote=a=b\nbad line\nlist<<EOF\none\ntwo\nEOF\nversion=2\n__proto__=x\n');
    expect(outputs).toEqual({ version: '2', empty: '', note: 'a=b', list: 'one\ntwo', ['__proto__']: 'x' });
    expect(Object.getPrototypeOf(outputs)).toBe(Object.prototype);
    expect(problems).toEqual(['line 4: not key=value with a key of letters, digits, _ and - (ignored)']);
    expect(parseOutputFile('x<<END\nunterminated\n').problems[0]).toContain('no closing END');
  });

  test('steps.* and needs.* resolve, a missing output is empty, other expressions stay', () => {
    const text = 'v=${{ steps.build.outputs.version }} n=${{needs.test.outputs.version}} m=${{ steps.build.outputs.nope }} c=${{ steps.constructor.outputs.length }} i=${{ inputs.level }}';
    expect(resolveOutputs(text, { steps: { build: { version: '1.2.3' } }, needs: { test: { version: '9' } } })).toBe('v=1.2.3 n=9 m= c= i=${{ inputs.level }}');
  });
});

describe('parsePipeline with matrix and outputs', () => {
  const FILE = `
jobs:
  test:
    matrix:
      node: [18, 20]
      db: [pg, sqlite]
      exclude: [{ node: 18, db: sqlite }]
      max-parallel: 2
    outputs:
      version: "\${{ steps.build.outputs.version }}-\${{ matrix.db }}"
    steps:
      - id: build
        run: echo "node \${{ matrix.node }}" && echo "version=1" >> "$DOTGIT_OUTPUT"
        env: { DB: "db-\${{ matrix.db }}" }
  use:
    needs: [test]
    steps:
      - run: echo "\${{ needs.test.outputs.version }}"
`;

  test('a matrix job becomes one job per combination, with values substituted and in MATRIX_*; dependants need them all', () => {
    const spec = parsePipeline(FILE);
    expect(spec.jobs.map((j) => j.name)).toEqual(['test (18, pg)', 'test (20, pg)', 'test (20, sqlite)', 'use']);
    const [first] = spec.jobs;
    expect(first.steps[0]).toMatchObject({ id: 'build', run: 'echo "node 18" && echo "version=1" >> "$DOTGIT_OUTPUT"', env: { MATRIX_NODE: '18', MATRIX_DB: 'pg', DB: 'db-pg' } });
    expect(first.outputs).toEqual({ version: '${{ steps.build.outputs.version }}-pg' });
    expect(first.matrix).toEqual({ job: 'test', values: { node: '18', db: 'pg' }, failFast: true, maxParallel: 2 });
    expect(spec.jobs[3].needs).toEqual(['test (18, pg)', 'test (20, pg)', 'test (20, sqlite)']);
    expect(spec.jobs[3].steps[0].run).toBe('echo "${{ needs.test.outputs.version }}"');
    expect(spec.jobs[3].matrix).toBeUndefined();
  });

  test('a file without matrix or outputs parses to the same shape as before', () => {
    const spec = parsePipeline('jobs:\n  a:\n    steps:\n      - run: echo\n');
    expect(spec.jobs[0]).toEqual({ name: 'a', needs: [], steps: [{ name: 'step-1', run: 'echo', env: {}, timeoutMs: undefined, retry: 0 }], artifacts: [], secrets: [], network: 'none' });
  });

  test.each([
    ['an empty axis', 'jobs:\n  t:\n    matrix:\n      node: []\n    steps:\n      - run: echo\n', '.dotgit/pipeline.yml:4:13: jobs.t.matrix.node: a matrix axis needs at least one value'],
    ['too many combinations', `jobs:\n  t:\n    matrix:\n      a: [${Array.from({ length: 20 }, (_, i) => i).join(', ')}]\n      b: [${Array.from({ length: 20 }, (_, i) => i).join(', ')}]\n    steps:\n      - run: echo\n`, '.dotgit/pipeline.yml:4:7: jobs.t.matrix: the matrix makes 400 combinations; at most 256 are allowed'],
    ['an axis that is not a list', 'jobs:\n  t:\n    matrix:\n      node: 18\n    steps:\n      - run: echo\n', '.dotgit/pipeline.yml:4:13: jobs.t.matrix.node:'],
    ['a bad fail-fast', 'jobs:\n  t:\n    matrix:\n      node: [1]\n      fail-fast: maybe\n    steps:\n      - run: echo\n', '.dotgit/pipeline.yml:5:18: jobs.t.matrix.fail-fast:'],
    ['an unknown matrix key in run', 'jobs:\n  t:\n    matrix:\n      node: [1]\n    steps:\n      - run: echo ${{ matrix.nod }}\n', '.dotgit/pipeline.yml:6:14: jobs.t.steps.0.run: ${{ matrix.nod }}: the matrix has no key "nod"'],
    ['a matrix reference without a matrix', 'jobs:\n  t:\n    steps:\n      - run: echo ${{ matrix.node }}\n', 'job "t" has no matrix'],
    ['an unknown step id in outputs', 'jobs:\n  t:\n    outputs: { v: "${{ steps.nope.outputs.v }}" }\n    steps:\n      - run: echo\n', '.dotgit/pipeline.yml:3:19: jobs.t.outputs.v: ${{ steps.nope.outputs.v }}: no step with id "nope"'],
    ['an output of a job not needed', 'jobs:\n  a:\n    outputs: { v: x }\n    steps:\n      - run: echo\n  b:\n    steps:\n      - run: echo ${{ needs.a.outputs.v }}\n', 'job "b" does not list "a" in needs:'],
    ['an undeclared output', 'jobs:\n  a:\n    steps:\n      - run: echo\n  b:\n    needs: [a]\n    steps:\n      - run: echo ${{ needs.a.outputs.v }}\n', 'job "a" declares no output "v"'],
    ['a duplicate step id', 'jobs:\n  a:\n    steps:\n      - { id: x, run: echo }\n      - { id: x, name: two, run: echo }\n', '.dotgit/pipeline.yml:5:15: jobs.a.steps.1.id: duplicate step id "x"'],
    ['an unknown key in an include entry value', 'jobs:\n  a:\n    matrix:\n      n: [1]\n      include: [{ n: { deep: 1 } }]\n    steps:\n      - run: echo\n', 'jobs.a.matrix.include.0.n:'],
  ])('%s is refused at parse time, naming line and field', (_what, text, message) => {
    expect(errorOf(text).message).toContain(message);
  });
});
