import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { PayloadTooLargeError } from '../../core/errors';
import { LfsValidationError } from './errors';

/**
 * Passes an upload through unchanged while hashing it, and fails (instead of ending) when the
 * content is not the object it claims to be. Placed in front of `ObjectStore.put`, the failure
 * reaches the store before it commits: the filesystem driver then removes its temp file and never
 * renames it into place, so a bad upload can neither appear nor replace a good object.
 */
export class VerifyingStream extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private bytes = 0;

  /**
   * @param oid      the SHA-256 the content must have
   * @param expected the exact size, when known (from the action token or Content-Length)
   * @param maxBytes hard ceiling, so an upload of unknown size cannot fill the disk
   */
  constructor(
    private readonly oid: string,
    private readonly expected: number | undefined,
    private readonly maxBytes: number,
  ) {
    super();
  }

  get size(): number {
    return this.bytes;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    // Fail early: waiting for the end of an oversized body would waste disk and time.
    if (this.expected !== undefined && this.bytes > this.expected) {
      done(new LfsValidationError(`more than the declared ${this.expected} bytes were sent for ${this.oid}`));
      return;
    }
    if (this.bytes > this.maxBytes) {
      done(new PayloadTooLargeError(`an LFS object may be at most ${this.maxBytes} bytes`));
      return;
    }
    this.hash.update(chunk);
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    if (this.expected !== undefined && this.bytes !== this.expected) {
      done(new LfsValidationError(`${this.bytes} bytes were sent for ${this.oid}, declared ${this.expected}`));
      return;
    }
    const actual = this.hash.digest('hex');
    if (actual !== this.oid) {
      done(new LfsValidationError(`content hashes to ${actual}, not to its oid ${this.oid}`));
      return;
    }
    done();
  }
}
