import { StringDecoder } from 'node:string_decoder';

/**
 * Turns a byte stream into lines (split on "\n", newline removed), as the bytes arrive.
 * A StringDecoder keeps multi-byte UTF-8 characters intact across chunk boundaries.
 * A line longer than `maxLineChars` is emitted in pieces, so a step printing megabytes without a
 * newline cannot make the worker buffer them all.
 */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private pending = '';

  constructor(
    private readonly emit: (line: string) => void,
    private readonly maxLineChars = 64 * 1024,
  ) {}

  push(chunk: Buffer | string): void {
    this.pending += typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    let start = 0;
    for (let nl = this.pending.indexOf('\n'); nl !== -1; nl = this.pending.indexOf('\n', start)) {
      this.emitBounded(this.pending.slice(start, nl));
      start = nl + 1;
    }
    this.pending = this.pending.slice(start);
    while (this.pending.length > this.maxLineChars) {
      this.emit(this.pending.slice(0, this.maxLineChars));
      this.pending = this.pending.slice(this.maxLineChars);
    }
  }

  /** Same cut whether a long line arrived in one chunk or many. */
  private emitBounded(line: string): void {
    for (let i = this.maxLineChars; i < line.length; i += this.maxLineChars) {
      this.emit(line.slice(i - this.maxLineChars, i));
    }
    this.emit(line.slice(Math.max(0, Math.ceil(line.length / this.maxLineChars) - 1) * this.maxLineChars));
  }

  /** Emits the last line if it had no trailing newline. Call once, when the stream ended. */
  flush(): void {
    this.pending += this.decoder.end();
    if (this.pending.length > 0) this.emit(this.pending);
    this.pending = '';
  }
}
