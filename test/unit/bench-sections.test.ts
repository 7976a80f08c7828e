import { mergeSections, replaceSection } from '../../bench/lib';

// BENCHMARKS.md is written by many benches, each rewriting its own sections: the full run must not
// drop the sections it does not measure (it once wrote the whole file from scratch).

const doc = [
  '# Benchmarks',
  '',
  'old preamble',
  '',
  '## By hand',
  '',
  'kept as written',
  '',
  '## Goals',
  '',
  'old goals',
  '',
  '## Goals of another kind',
  '',
  'another bench',
  '',
].join('\n');

test('the full run replaces its preamble and its own sections in place and keeps the others', () => {
  const fresh = ['# Benchmarks', '', 'new preamble', '', '## Goals', '', 'new goals', '', '## Figures', '', 'new figures', ''].join('\n');
  expect(mergeSections(doc, fresh)).toBe(
    [
      '# Benchmarks',
      '',
      'new preamble',
      '',
      '## By hand',
      '',
      'kept as written',
      '',
      '## Goals',
      '',
      'new goals',
      '',
      '## Goals of another kind',
      '',
      'another bench',
      '',
      '## Figures',
      '',
      'new figures',
      '',
    ].join('\n'),
  );
});

test('a fresh document without a preamble keeps the file\'s', () => {
  expect(mergeSections(doc, '## Goals\n\nnew goals\n').startsWith('# Benchmarks\n\nold preamble\n\n## By hand\n')).toBe(true);
});

test('into an empty or missing file, the fresh document as it is', () => {
  const fresh = '# Benchmarks\n\nintro\n\n## A\n\na\n';
  expect(mergeSections('', fresh)).toBe(fresh);
  expect(mergeSections('# Benchmarks\n', fresh)).toBe(fresh);
});

test('a heading is matched as a whole line, not as the start of a longer one', () => {
  const replaced = replaceSection(doc, '## Goals', '## Goals\n\nreplaced\n');
  expect(replaced).toContain('## Goals\n\nreplaced\n\n## Goals of another kind\n\nanother bench');
  expect(replaced).not.toContain('old goals');
  // The longer heading alone, when the shorter one comes first.
  const other = replaceSection(doc, '## Goals of another kind', '## Goals of another kind\n\nnew\n');
  expect(other).toContain('## Goals\n\nold goals\n');
  expect(other.endsWith('## Goals of another kind\n\nnew\n')).toBe(true);
  // The shorter heading when the longer one comes first.
  const longerFirst = '# B\n\n## Goals of another kind\n\nx\n\n## Goals\n\ny\n';
  expect(replaceSection(longerFirst, '## Goals', '## Goals\n\nz\n')).toBe('# B\n\n## Goals of another kind\n\nx\n\n## Goals\n\nz\n');
  // Unknown: appended.
  expect(replaceSection(doc, '## New', '## New\n\nx\n').endsWith('another bench\n\n## New\n\nx\n')).toBe(true);
});
