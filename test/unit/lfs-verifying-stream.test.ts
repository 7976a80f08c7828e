import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PayloadTooLargeError } from '../../core/errors';
import { LfsValidationError } from '../../git-server/lfs/errors';
import { VerifyingStream } from '../../git-server/lfs/verifying-stream';

const content = randomBytes(100_000);
const oid = createHash('sha256').update(content).digest('hex');

/** Runs `chunks` through a VerifyingStream into a sink; resolves to the bytes the sink saw. */
async function run(chunks: Buffer[], expected: number | undefined, max = 1e9): Promise<Buffer> {
  const seen: Buffer[] = [];
  const sink = new Writable({ write: (c: Buffer, _e, done) => (seen.push(c), done()) });
  await pipeline(Readable.from(chunks), new VerifyingStream(oid, expected, max), sink);
  return Buffer.concat(seen);
}

test('passes matching content through unchanged, with or without a known size', async () => {
  const halves = [content.subarray(0, 5000), content.subarray(5000)];
  expect((await run(halves, content.length)).equals(content)).toBe(true);
  expect((await run(halves, undefined)).equals(content)).toBe(true);
});

test('fails at the end when the content hashes to something else', async () => {
  const other = Buffer.from(content);
  other[0] ^= 1;
  await expect(run([other], other.length)).rejects.toThrow(/hashes to/);
});

test('fails when fewer bytes than declared arrive', async () => {
  await expect(run([content.subarray(1)], content.length)).rejects.toThrow(LfsValidationError);
});

test('fails as soon as more bytes than declared arrive, before the end', async () => {
  const err = run([content, content, content], 10);
  await expect(err).rejects.toThrow(/more than the declared 10 bytes/);
});

test('an upload of unknown size stops at the ceiling', async () => {
  await expect(run([content], undefined, 1000)).rejects.toThrow(PayloadTooLargeError);
});
