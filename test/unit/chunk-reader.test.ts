import { PassThrough } from 'node:stream';
import { ChunkReader } from '../../core/git';

// How commitAndFile reads `cat-file --batch-command` answers: lines and counted bytes, whatever
// chunks the pipe delivers them in.

const answer = Buffer.from('a'.repeat(40) + ' commit 12\n' + 'b'.repeat(40) + ' blob 7\n' + 'x: 1\ny\n\n' + 'tail');

async function readAll(stream: PassThrough): Promise<unknown[]> {
  const r = new ChunkReader(stream);
  return [await r.line(), await r.line(), await r.bytes(7), await r.line(), await r.bytes(4), await r.line()];
}

const expected = ['a'.repeat(40) + ' commit 12', 'b'.repeat(40) + ' blob 7', Buffer.from('x: 1\ny\n'), '', Buffer.from('tail'), undefined];

test('the same reads at every split of the answer into two chunks', async () => {
  for (let at = 0; at <= answer.length; at++) {
    const stream = new PassThrough();
    const reads = readAll(stream);
    stream.write(answer.subarray(0, at));
    await new Promise((resolve) => setImmediate(resolve));
    stream.end(answer.subarray(at));
    expect({ at, reads: await reads }).toEqual({ at, reads: expected });
  }
});

test('the same reads when the answer comes one byte at a time', async () => {
  const stream = new PassThrough();
  const reads = readAll(stream);
  for (const byte of answer) {
    stream.write(Buffer.from([byte]));
    await new Promise((resolve) => setImmediate(resolve));
  }
  stream.end();
  expect(await reads).toEqual(expected);
});

test('a read the stream ended before answers undefined', async () => {
  const stream = new PassThrough();
  const r = new ChunkReader(stream);
  stream.end('partial line without newline');
  expect(await r.line()).toBeUndefined();
  expect(await r.bytes(1000)).toBeUndefined();
  expect((await r.bytes(7))?.toString()).toBe('partial');
});

test('after stop, what still comes is not kept', async () => {
  const stream = new PassThrough();
  const r = new ChunkReader(stream);
  stream.write('one\n');
  expect(await r.line()).toBe('one');
  r.stop();
  stream.end('two\n');
  await new Promise((resolve) => setImmediate(resolve));
  expect(stream.readableFlowing).toBe(true);
  expect(stream.listenerCount('data')).toBe(0);
});

test('a stream destroyed without an error ends the reads', async () => {
  const stream = new PassThrough();
  const r = new ChunkReader(stream);
  const pending = r.line();
  stream.destroy();
  expect(await pending).toBeUndefined();
});
