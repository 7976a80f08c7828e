import { parsePipeline, PipelineSpecError } from '../../core/pipeline-spec';
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
