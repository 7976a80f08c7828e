import { StringDecoder } from 'node:string_decoder';

/** Secret masking the splitter applies before it cuts long lines (core/secret-mask.ts's SecretMasker). */
export interface LineMask {
  /** `text` with every secret replaced. */
  mask(text: string): string;
  /** Where `mask` would replace in `text`, as [start, end) pairs, left to right. */
  spans(text: string): [number, number][];
  /** Length of the longest text `mask` replaces (0 when there is nothing to mask). */
  readonly longest: number;
}

/**
 * Turns a byte stream into lines (split on "\n", newline removed), as the bytes arrive.
 * A StringDecoder keeps multi-byte UTF-8 characters intact across chunk boundaries.
 * A line longer than `maxLineChars` is emitted in pieces, so a step printing megabytes without a
 * newline cannot make the worker buffer them all. With a `mask`, lines are masked before they are
 * cut: a secret straddling a cut (or a chunk boundary) is still masked whole.
 */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  /** Raw text of the current line not yet masked: the last `mask.longest` characters may begin a secret. */
  private pending = '';
  /** Masked text of the current line not yet emitted (shorter than a piece, between pushes). */
  private ready = '';

  constructor(
    private readonly emit: (line: string) => void,
    private readonly maxLineChars = 64 * 1024,
    private readonly mask?: LineMask,
  ) {}

  push(chunk: Buffer | string): void {
    this.pending += typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    let start = 0;
    for (let nl = this.pending.indexOf('\n'); nl !== -1; nl = this.pending.indexOf('\n', start)) {
      this.endLine(this.pending.slice(start, nl));
      start = nl + 1;
    }
    this.pending = this.pending.slice(start);
    this.drainLongLine();
  }

  /** Emits the last line if it had no trailing newline. Call once, when the stream ended. */
  flush(): void {
    this.pending += this.decoder.end();
    if (this.pending.length > 0 || this.ready.length > 0) this.endLine(this.pending);
    this.pending = '';
  }

  private masked(text: string): string {
    return this.mask ? this.mask.mask(text) : text;
  }

  private endLine(rawRest: string): void {
    const line = this.ready + this.masked(rawRest);
    this.ready = '';
    this.emitBounded(line);
  }

  /**
   * A line without its newline yet: the raw text no secret can still straddle (all but the last
   * `longest` characters, or up to the end of a secret crossing that point) is masked, and whole
   * pieces of the masked text go out.
   */
  private drainLongLine(): void {
    const keep = this.mask?.longest ?? 0;
    if (this.pending.length <= this.maxLineChars + keep) return;
    let cut = this.pending.length - keep;
    for (const [s, e] of this.mask?.spans(this.pending) ?? []) {
      if (s >= cut) break;
      if (e > cut) cut = e;
    }
    this.ready += this.masked(this.pending.slice(0, cut));
    this.pending = this.pending.slice(cut);
    while (this.ready.length > this.maxLineChars) {
      this.emit(this.ready.slice(0, this.maxLineChars));
      this.ready = this.ready.slice(this.maxLineChars);
    }
  }

  /** Same cut whether a long line arrived in one chunk or many. */
  private emitBounded(line: string): void {
    for (let i = this.maxLineChars; i < line.length; i += this.maxLineChars) {
      this.emit(line.slice(i - this.maxLineChars, i));
    }
    this.emit(line.slice(Math.max(0, Math.ceil(line.length / this.maxLineChars) - 1) * this.maxLineChars));
  }
}
