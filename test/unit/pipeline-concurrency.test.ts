import { expandDynamicMatrix, parsePipeline, PipelineSpecError } from '../../core/pipeline-spec';
import { resolveGroup } from '../../core/pipeline-concurrency';
import { groupWaitMessage } from '../../core/concurrency-types';

// Issue 17 item 4: `concurrency:` at pipeline level, its group's `${{ … }}` checked with the line
// when the file is parsed and filled in from the run when it loads.

const JOBS = 'jobs:\n  build:\n    steps: [{ run: make }]\n';
const fails = (text: string) => {
  try {
    parsePipeline(text);
  } catch (err) {
    expect(err).toBeInstanceOf(PipelineSpecError);
    return (err as Error).message;
  }
  throw new Error('parsed, but should have failed');
};

test('the object form keeps the group as written and cancel-in-progress', () => {
  const spec = parsePipeline(`concurrency: { group: "deploy-\${{ ref }}", cancel-in-progress: true }\n${JOBS}`);
  expect(spec.concurrency).toEqual({ group: 'deploy-${{ ref }}', cancelInProgress: true });
});

test('the string form is a group without cancel-in-progress; no concurrency: no key', () => {
  expect(parsePipeline(`concurrency: ci\n${JOBS}`).concurrency).toEqual({ group: 'ci', cancelInProgress: false });
  expect(parsePipeline(JOBS)).not.toHaveProperty('concurrency');
});

test('an unknown expression in the group fails with its line and what a group may use', () => {
  const msg = fails(`${JOBS}concurrency:\n  group: "x-\${{ github.sha }}"\n`);
  expect(msg).toMatch(/^\.dotgit\/pipeline\.yml:5:10: .*\$\{\{ github\.sha \}\}: a group may use \$\{\{ ref \}\}/);
});

test('an undeclared input, an unknown key and an empty group are refused with their lines', () => {
  expect(fails(`concurrency: "x-\${{ inputs.env }}"\n${JOBS}`)).toMatch(/^\.dotgit\/pipeline\.yml:1:14: .*no input "env" is declared/);
  expect(fails(`concurrency: { group: g, cancel-in-progess: true }\n${JOBS}`)).toMatch(/^\.dotgit\/pipeline\.yml:1:\d+: concurrency.*cancel-in-progess/);
  expect(fails(`concurrency: { group: "" }\n${JOBS}`)).toMatch(/^\.dotgit\/pipeline\.yml:1:\d+: concurrency\.group: the group must not be empty/);
});

test('a declared input may name the group', () => {
  const spec = parsePipeline(`on:\n  manual:\n    inputs: { env: { default: staging } }\nconcurrency: "deploy-\${{ inputs.env }}"\n${JOBS}`);
  expect(resolveGroup(spec.concurrency!.group, { ref: 'refs/heads/main', commit: 'c', repo: 'acme/web', event: 'manual', inputs: { env: 'prod' } })).toBe('deploy-prod');
});

test('resolution fills ref, ref_name, commit, repo and event, and never expands a value again', () => {
  const ctx = { ref: 'refs/heads/release/2.x', commit: 'abc', repo: 'acme/web', event: 'push', inputs: {} };
  expect(resolveGroup('${{ ref }}|${{ ref_name }}|${{commit}}|${{ repo }}|${{ event }}', ctx)).toBe('refs/heads/release/2.x|release/2.x|abc|acme/web|push');
  expect(resolveGroup('g-${{ ref }}', { ...ctx, ref: 'refs/heads/${{ commit }}' })).toBe('g-refs/heads/${{ commit }}');
});

test('the wait message counts the runs ahead', () => {
  expect(groupWaitMessage(1, 'deploy-main')).toBe('queued behind 1 run in concurrency group deploy-main');
  expect(groupWaitMessage(2, 'g')).toBe('queued behind 2 runs in concurrency group g');
});

test('job-level concurrency (ADR 0037): kept on the job (and each matrix instance); a bad expression fails with its line', () => {
  const spec = parsePipeline(`jobs:\n  ship:\n    matrix: { n: [1, 2] }\n    concurrency: { group: "ship-\${{ ref_name }}", cancel-in-progress: true }\n    steps: [{ run: make }]\n`);
  expect(spec.jobs.map((j) => j.concurrency)).toEqual([
    { group: 'ship-${{ ref_name }}', cancelInProgress: true },
    { group: 'ship-${{ ref_name }}', cancelInProgress: true },
  ]);
  expect(parsePipeline(`jobs:\n  a:\n    concurrency: ci\n    steps: [{ run: make }]\n`).jobs[0].concurrency).toEqual({ group: 'ci', cancelInProgress: false });
  expect(fails(`jobs:\n  a:\n    concurrency: { group: "x-\${{ matrix.n }}" }\n    steps: [{ run: make }]\n`)).toMatch(/^\.dotgit\/pipeline\.yml:3:27: jobs\.a\.concurrency\.group: \$\{\{ matrix\.n \}\}: a group may use/);
});

test('a matrix job\'s group may name its keys (ADR 0044): each instance queues in its own; unknown keys and the pipeline\'s group refused with the line', () => {
  const spec = parsePipeline(`jobs:\n  ship:\n    matrix: { env: [staging, prod], n: [1] }\n    concurrency: { group: "ship-\${{ matrix.env }}-\${{ ref_name }}" }\n    steps: [{ run: make }]\n`);
  expect(spec.jobs.map((j) => [j.name, j.concurrency?.group])).toEqual([
    ['ship (staging, 1)', 'ship-staging-${{ ref_name }}'],
    ['ship (prod, 1)', 'ship-prod-${{ ref_name }}'],
  ]);
  expect(fails(`jobs:\n  ship:\n    matrix: { env: [a] }\n    concurrency: "ship-\${{ matrix.other }}"\n    steps: [{ run: make }]\n`)).toMatch(/^\.dotgit\/pipeline\.yml:4:18: jobs\.ship\.concurrency: \$\{\{ matrix\.other \}\}: the matrix has no key "other"$/);
  expect(fails(`concurrency: "c-\${{ matrix.env }}"\njobs:\n  ship:\n    matrix: { env: [a] }\n    steps: [{ run: make }]\n`)).toMatch(/^\.dotgit\/pipeline\.yml:1:14: concurrency: \$\{\{ matrix\.env \}\}: a group may use/);
  // A matrix from a job's output: filled in when it is expanded, at run time.
  const dynamic = parsePipeline(`jobs:\n  setup:\n    outputs: { m: "\${{ steps.p.outputs.m }}" }\n    steps: [{ id: p, run: plan }]\n  ship:\n    needs: [setup]\n    matrix: \${{ fromJSON(needs.setup.outputs.m) }}\n    concurrency: "ship-\${{ matrix.env }}"\n    steps: [{ run: make }]\n`).jobs[1];
  const built = expandDynamicMatrix(dynamic, '{"env": ["a", "b"]}', ['setup']);
  expect('jobs' in built && built.jobs.map((j) => j.concurrency?.group)).toEqual(['ship-a', 'ship-b']);
  const empty = expandDynamicMatrix({ ...dynamic, concurrency: { group: '${{ matrix.x }}', cancelInProgress: false } }, '{"env": ["a"]}', ['setup']);
  expect(empty).toEqual({ problem: 'concurrency.group is empty for "ship (a)"' });
});
