import { LineSplitter } from '../../activities/sandbox/line-splitter';

function split(chunks: (string | Buffer)[], max?: number): string[] {
  const lines: string[] = [];
  const s = new LineSplitter((l) => lines.push(l), max);
  for (const c of chunks) s.push(c);
  s.flush();
  return lines;
}

test('splits on newlines across chunk boundaries and flushes the partial last line', () => {
  expect(split(['a\nb', 'c\n', '\nd'])).toEqual(['a', 'bc', '', 'd']);
  expect(split(['x\n'])).toEqual(['x']);
  expect(split([])).toEqual([]);
});

test('keeps a multi-byte character split between chunks intact', () => {
  const bytes = Buffer.from('héllo ✓\n', 'utf8');
  const chunks = Array.from(bytes, (b) => Buffer.from([b]));
  expect(split(chunks)).toEqual(['héllo ✓']);
});

test('cuts an endless line into bounded pieces', () => {
  expect(split(['a'.repeat(10) + '\n'], 4)).toEqual(['aaaa', 'aaaa', 'aa']);
});

test('cuts the same way whatever the chunking', () => {
  const text = 'b'.repeat(9) + '\n' + 'c'.repeat(4) + '\n';
  const whole = split([text], 4);
  const bytewise = split(text.split(''), 4);
  expect(whole).toEqual(['bbbb', 'bbbb', 'b', 'cccc']);
  expect(bytewise).toEqual(whole);
});
