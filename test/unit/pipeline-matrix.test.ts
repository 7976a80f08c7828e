import { expandMatrix, instanceName, MAX_MATRIX_COMBINATIONS, parseOutputFile, resolveOutputs } from '../../core/pipeline-matrix';
import { expandDynamicMatrix, parsePipeline } from '../../core/pipeline-spec';
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

describe('a matrix computed from an upstream output (issue 17 item 1)', () => {
  const file = (matrix: string, needs = '[setup]', outputs = '{ targets: "${{ steps.p.outputs.t }}" }') => `
jobs:
  setup:
    outputs: ${outputs}
    steps: [{ id: p, run: plan }]
  build:
    needs: ${needs}
    matrix: ${matrix}
    steps: [{ name: b, run: "make \${{ matrix.os }}" }]
`;
  const dyn = '"${{ fromJSON(needs.setup.outputs.targets) }}"';

  test('the job stays one job, naming its source; jobs that need it keep needing it by name', () => {
    const spec = parsePipeline(file(dyn));
    expect(spec.jobs.map((j) => j.name)).toEqual(['setup', 'build']);
    expect(spec.jobs[1].dynamicMatrix).toEqual({ job: 'setup', output: 'targets' });
  });

  test.each([
    ['"${{ needs.setup.outputs.targets }}"', '[setup]', 'jobs.build.matrix: a matrix is a map of axes, or ${{ fromJSON(needs.<job>.outputs.<name>) }}'],
    [dyn, '[]', 'jobs.build.matrix: ${{ fromJSON(needs.setup.outputs.targets) }}: job "build" does not list "setup" in needs:'],
    ['"${{ fromJSON(needs.setup.outputs.other) }}"', '[setup]', 'job "setup" declares no output "other"'],
  ])('refused with the line: matrix %s, needs %s', (matrix, needs, message) => {
    const err = errorOf(file(matrix, needs));
    expect(err.message).toContain(message);
    expect(err.line).toBe(8);
  });

  test('expansion at run time: instances as for a written matrix, or a problem naming the output', () => {
    const job = parsePipeline(file(dyn)).jobs[1];
    const built = expandDynamicMatrix(job, '{"os": ["linux", "mac"], "fail-fast": false}', ['setup']);
    expect('jobs' in built && built.jobs.map((j) => [j.name, j.steps[0].run, j.matrix?.failFast, j.dynamicMatrix])).toEqual([
      ['build (linux)', 'make linux', false, undefined],
      ['build (mac)', 'make mac', false, undefined],
    ]);
    const problem = (json: string) => ('problem' in expandDynamicMatrix(job, json, []) ? (expandDynamicMatrix(job, json, []) as { problem: string }).problem : '');
    expect(problem('not json')).toMatch(/^matrix: needs\.setup\.outputs\.targets is not JSON/);
    expect(problem('["linux"]')).toContain('must be a JSON object of axes');
    expect(problem('{"os": []}')).toContain('matrix: needs.setup.outputs.targets.os: a matrix axis needs at least one value');
    expect(problem(JSON.stringify({ a: [...Array(20).keys()], b: [...Array(20).keys()] }))).toContain('at most 256');
    expect(problem('{"os": ["a"], "exclude": [{"os": "a"}]}')).toContain('no combinations left');
  });
});

describe('a matrix axis (or include/exclude) computed from an upstream output (ADR 0044)', () => {
  const file = (matrix: string, needs = '[setup]') => `
jobs:
  setup:
    outputs: { nodes: "\${{ steps.p.outputs.n }}", extra: "\${{ steps.p.outputs.e }}" }
    steps: [{ id: p, run: plan }]
  build:
    needs: ${needs}
    matrix:
${matrix}
    steps: [{ name: b, run: "make \${{ matrix.os }} \${{ matrix.node }}" }]
`;
  const axis = '      os: [linux, mac]\n      node: ${{ fromJSON(needs.setup.outputs.nodes) }}\n      fail-fast: false';

  test('the job stays one job, naming each key\'s source and the matrix as written', () => {
    const job = parsePipeline(file(axis)).jobs[1];
    expect(job.name).toBe('build');
    expect(job.dynamicMatrix).toEqual({
      job: 'setup',
      output: 'nodes',
      written: { os: ['linux', 'mac'], node: '${{ fromJSON(needs.setup.outputs.nodes) }}', 'fail-fast': false },
      from: { node: { job: 'setup', output: 'nodes' } },
    });
  });

  test.each([
    ['a source not in needs', axis, '[]', 10, 'jobs.build.matrix.node: ${{ fromJSON(needs.setup.outputs.nodes) }}: job "build" does not list "setup" in needs:'],
    ['an undeclared output', '      node: ${{ fromJSON(needs.setup.outputs.other) }}', '[setup]', 9, 'jobs.build.matrix.node: ${{ fromJSON(needs.setup.outputs.other) }}: job "setup" declares no output "other"'],
    ['a bad written axis beside it', '      node: ${{ fromJSON(needs.setup.outputs.nodes) }}\n      os: []', '[setup]', 10, 'jobs.build.matrix.os: a matrix axis needs at least one value'],
    ['fail-fast from JSON', '      node: ${{ fromJSON(needs.setup.outputs.nodes) }}\n      fail-fast: ${{ fromJSON(needs.setup.outputs.extra) }}', '[setup]', 10, 'jobs.build.matrix.fail-fast: fail-fast is written in the file'],
    ['an axis that is another expression', '      node: ${{ needs.setup.outputs.nodes }}', '[setup]', 9, 'jobs.build.matrix.node: Invalid input: expected array'],
  ])('refused with the line: %s', (_what, matrix, needs, line, message) => {
    const err = errorOf(file(matrix, needs));
    expect(err.message).toContain(message);
    expect(err.line).toBe(line);
  });

  test('${{ matrix.<key> }} is checked against the written keys and the fromJSON ones (unless include comes from JSON)', () => {
    expect(errorOf(file('      node: ${{ fromJSON(needs.setup.outputs.nodes) }}')).message).toContain('${{ matrix.os }}: the matrix has no key "os"');
    expect(() => parsePipeline(file('      node: ${{ fromJSON(needs.setup.outputs.nodes) }}\n      include: ${{ fromJSON(needs.setup.outputs.extra) }}'))).not.toThrow();
  });

  test('expansion at run time: the written axes and the output\'s values, in the written order; problems name the key and the output', () => {
    const job = parsePipeline(file(axis)).jobs[1];
    const built = expandDynamicMatrix(job, 'ignored when values has the key', ['setup'], { node: '[18, 20]' });
    expect('jobs' in built && built.jobs.map((j) => [j.name, j.steps[0].run, j.matrix?.failFast])).toEqual([
      ['build (linux, 18)', 'make linux 18', false],
      ['build (linux, 20)', 'make linux 20', false],
      ['build (mac, 18)', 'make mac 18', false],
      ['build (mac, 20)', 'make mac 20', false],
    ]);
    // The first (here the only) source's output is also the workflow's `json`.
    expect('jobs' in expandDynamicMatrix(job, '["22"]', ['setup']) && expandDynamicMatrix(job, '["22"]', ['setup'])).toMatchObject({ jobs: [{ name: 'build (linux, 22)' }, { name: 'build (mac, 22)' }] });
    const problem = (nodes: string) => {
      const r = expandDynamicMatrix(job, '', [], { node: nodes });
      return 'problem' in r ? r.problem : '';
    };
    expect(problem('[18')).toMatch(/^matrix\.node: needs\.setup\.outputs\.nodes is not JSON \(.+\): "\[18"$/);
    expect(problem('{"a": 1}')).toBe('matrix.node: needs.setup.outputs.nodes must be a JSON array (such as ["linux", "mac"]), got "{\\"a\\": 1}"');
    expect(problem('[]')).toBe('matrix.node: needs.setup.outputs.nodes: a matrix axis needs at least one value');
    expect(problem('[{"v": 1}]')).toMatch(/^matrix\.node: needs\.setup\.outputs\.nodes\.0: /);
    expect(problem(JSON.stringify([...Array(200).keys()]))).toBe('matrix: the matrix makes 400 combinations; at most 256 are allowed');
  });

  test('include from an output adds combinations as a written include does', () => {
    const job = parsePipeline(file('      os: [linux]\n      include: ${{ fromJSON(needs.setup.outputs.extra) }}')).jobs[1];
    const built = expandDynamicMatrix(job, '', [], { include: '[{"os": "linux", "node": "20"}, {"os": "win", "node": "18"}]' });
    expect('jobs' in built && built.jobs.map((j) => j.name)).toEqual(['build (linux, 20)', 'build (win, 18)']);
  });
});
