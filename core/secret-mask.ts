/** What a masked secret is replaced with in logs (GitHub Actions prints the same). */
export const MASK = '***';

/** Values shorter than this are not masked: masking "1" or "ab" would garble every log line. */
export const MIN_MASKED_LENGTH = 3;
/** Encoded fragments shorter than this are not masked: a few base64 characters match ordinary words. */
const MIN_ENCODED_LENGTH = 6;

/**
 * Replaces secret values in log lines, including the forms a script is likely to print them in:
 * JSON-escaped (inside `JSON.stringify` output), base64 (standard and URL-safe, at any of the three
 * byte alignments a secret can take inside a longer base64 text) and URL-encoded. Multi-line values
 * are masked line by line, since logs arrive a line at a time.
 */
export class SecretMasker {
  private readonly pattern: RegExp | undefined;
  /** Length of the longest text replaced: a cut of a stream this far from its end can split no secret. */
  readonly longest: number;

  constructor(values: Iterable<string>) {
    const forms = new Set<string>();
    for (const value of values) {
      if (value.length < MIN_MASKED_LENGTH) continue;
      for (const line of new Set([value, ...value.split(/\r?\n/)])) if (line.length >= MIN_MASKED_LENGTH) forms.add(line);
      for (const form of encodedForms(value)) if (form.length >= MIN_ENCODED_LENGTH) forms.add(form);
    }
    // Longest first, so a form that contains another is replaced whole.
    const sorted = [...forms].sort((a, b) => b.length - a.length);
    this.pattern = sorted.length ? new RegExp(sorted.map(escapeRegExp).join('|'), 'g') : undefined;
    this.longest = sorted[0]?.length ?? 0;
  }

  mask(line: string): string {
    return this.pattern ? line.replace(this.pattern, MASK) : line;
  }

  /** Where `mask` would replace, as [start, end) pairs, left to right. */
  spans(text: string): [number, number][] {
    return this.pattern ? [...text.matchAll(this.pattern)].map((m) => [m.index, m.index + m[0].length]) : [];
  }
}

function encodedForms(value: string): string[] {
  const forms: string[] = [];
  const lines = value.split(/\r?\n/).filter((l) => l.length > 0);
  for (const v of new Set([value, ...lines])) {
    forms.push(JSON.stringify(v).slice(1, -1), encodeURIComponent(v));
    const bytes = Buffer.from(v, 'utf8');
    for (let offset = 0; offset < 3; offset++) {
      // Prefix `offset` bytes, encode, then keep only the characters that depend on the secret alone.
      const b64 = Buffer.concat([Buffer.alloc(offset), bytes]).toString('base64');
      const start = offset === 0 ? 0 : offset === 1 ? 2 : 3;
      const tail = (bytes.length + offset) % 3;
      const end = b64.replace(/=+$/, '').length - (tail === 0 ? 0 : 1);
      const core = offset === 0 && tail === 0 ? b64 : b64.slice(start, end);
      forms.push(core, toBase64Url(core));
      if (offset === 0) forms.push(b64, b64.replace(/=+$/, ''), toBase64Url(b64));
    }
  }
  return forms;
}

function toBase64Url(b64: string): string {
  return b64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
