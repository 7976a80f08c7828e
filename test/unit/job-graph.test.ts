import { fileNeeds, jobGraph } from '../../core/job-graph';
import { parsePipeline } from '../../core/pipeline-spec';

// The run page's job graph (issue 18): each of a run's jobs with the run's jobs it needs, from the
// pipeline file at the run's commit.

const FILE = `
jobs:
  build:
    steps: [{ run: make }]
  test:
    needs: [build]
    matrix: { node: [18, 20] }
    steps: [{ run: make test }]
  lint:
    steps: [{ run: make lint }]
  ship:
    needs: [test, lint]
    steps: [{ run: make ship }]
`;

test('edges follow needs:, a matrix job is needed (and needs) as all of its instances', () => {
  const file = fileNeeds(parsePipeline(FILE));
  expect(jobGraph(file, ['build', 'test (18)', 'test (20)', 'lint', 'ship'])).toEqual([
    { name: 'build', needs: [] },
    { name: 'test (18)', needs: ['build'] },
    { name: 'test (20)', needs: ['build'] },
    { name: 'lint', needs: [] },
    { name: 'ship', needs: ['test (18)', 'test (20)', 'lint'] },
  ]);
});

test('an instance the file does not list (a matrix made at run time) gets its job\'s edges; unknown jobs none', () => {
  const file = fileNeeds(parsePipeline(FILE));
  expect(jobGraph(file, ['build', 'test (22)', 'ship', 'other'])).toEqual([
    { name: 'build', needs: [] },
    { name: 'test (22)', needs: ['build'] },
    { name: 'ship', needs: ['test (22)'] },
    { name: 'other', needs: [] },
  ]);
});

test('without the file (unreadable, invalid) every job is listed with no needs', () => {
  expect(jobGraph(undefined, ['a', 'b'])).toEqual([
    { name: 'a', needs: [] },
    { name: 'b', needs: [] },
  ]);
});
