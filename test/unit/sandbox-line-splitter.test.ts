import { LineSplitter } from '../../activities/sandbox/line-splitter';
import { MASK, SecretMasker } from '../../core/secret-mask';

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

describe('with a secret masker: masked before the long-line cut', () => {
  const secret = 'hunter2-super-secret';
  const masker = new SecretMasker([secret]);
  const splitMasked = (chunks: string[], max = 64 * 1024) => {
    const lines: string[] = [];
    const s = new LineSplitter((l) => lines.push(l), max, masker);
    for (const c of chunks) s.push(c);
    s.flush();
    return lines;
  };
  // Every chunking of a line: whole, in two at each place near the secret, and in small pieces.
  const chunkings = (text: string): string[][] => {
    const out: string[][] = [[text]];
    const at = text.indexOf(secret);
    for (let i = at - 3; i <= at + secret.length + 3; i++) out.push([text.slice(0, i), text.slice(i)]);
    const pieces: string[] = [];
    for (let i = 0; i < text.length; i += 4093) pieces.push(text.slice(i, i + 4093));
    out.push(pieces);
    return out;
  };

  test('a secret straddling the 64 KiB cut is masked, whatever the chunks, with or without a newline', () => {
    for (const ending of ['\n', '']) {
      const text = 'x'.repeat(65531) + secret + ' tail' + ending;
      for (const chunks of chunkings(text)) {
        const lines = splitMasked(chunks);
        expect(lines.join('')).toBe('x'.repeat(65531) + MASK + ' tail');
        for (const l of lines) expect(l.length).toBeLessThanOrEqual(64 * 1024);
        expect(lines.some((l) => l.includes(secret.slice(0, 5)) || l.includes(secret.slice(-5)))).toBe(false);
      }
    }
  });

  test('cuts the masked text the same way whatever the chunking', () => {
    const text = 'ab' + secret + 'c'.repeat(9) + secret + '\nshort ' + secret + '\n';
    const whole = splitMasked([text], 8);
    expect(splitMasked(text.split(''), 8)).toEqual(whole);
    // Cut every 8 characters of the masked line, as a line without secrets would be.
    expect(whole).toEqual(['ab***ccc', 'cccccc**', '*', 'short **', '*']);
  });
});
