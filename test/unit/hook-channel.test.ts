import { Duplex } from 'node:stream';
import { assertHookOrder, formatHookAnswer, HookRequestReader, MAX_HOOK_REQUEST_BYTES, serveHookChannel, type HookRequest } from '../../git-server/hook-channel';

// The hooks' channel (ADR 0047): the line protocol the shell hooks speak on fd 3.

const OLD = 'a'.repeat(40);
const NEW = 'b'.repeat(40);

test('a request is read line by line and finished by `end`', () => {
  const reader = new HookRequestReader();
  expect(reader.line('hook pre-receive')).toBeUndefined();
  expect(reader.line('option ci.skip')).toBeUndefined();
  expect(reader.line('option with  two spaces ')).toBeUndefined();
  expect(reader.line(`update ${OLD} ${NEW} refs/heads/main nff`)).toBeUndefined();
  expect(reader.line(`update ${OLD} ${NEW} refs/tags/v1`)).toBeUndefined();
  expect(reader.line('end')).toEqual({
    hook: 'pre-receive',
    pushOptions: ['ci.skip', 'with  two spaces '],
    updates: [
      { oldSha: OLD, newSha: NEW, ref: 'refs/heads/main', nonFastForward: true },
      { oldSha: OLD, newSha: NEW, ref: 'refs/tags/v1', nonFastForward: false },
    ],
  });
  // The next request starts afresh.
  reader.line('hook reference-transaction prepared');
  expect(reader.line('end')).toEqual({ hook: 'reference-transaction', state: 'prepared', pushOptions: [], updates: [] });
});

test('malformed lines are refused with what is wrong', () => {
  expect(() => new HookRequestReader().line('hook update')).toThrow('unknown hook "update"');
  expect(() => new HookRequestReader().line(`update ${OLD} ${NEW} refs/heads/main`)).toThrow('"update" before a hook line');
  const reader = new HookRequestReader();
  reader.line('hook post-receive');
  expect(() => reader.line('rm -rf /')).toThrow('unknown line "rm"');
  const big = new HookRequestReader();
  big.line('hook post-receive');
  expect(() => big.line(`option ${'x'.repeat(MAX_HOOK_REQUEST_BYTES)}`)).toThrow(`a hook request is limited to ${MAX_HOOK_REQUEST_BYTES} bytes`);
});

test('answers: one line per message, then the verdict', () => {
  expect(formatHookAnswer({ verdict: 'ok', messages: [] })).toBe('ok\n');
  expect(formatHookAnswer({ verdict: 'deny', messages: ['dotgit: rejected refs/heads/main: protected', 'two\nlines'] })).toBe(
    'message dotgit: rejected refs/heads/main: protected\nmessage two\nmessage lines\ndeny\n',
  );
  expect(formatHookAnswer({ verdict: 'error', status: 503, messages: [] })).toBe('error 503\n');
});

/** A socket stand-in: what the channel writes, and whether it ended the channel. */
function fakeSocket() {
  const written: string[] = [];
  const socket = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      written.push(chunk.toString());
      cb();
    },
  });
  return { socket, written };
}

const settle = () => new Promise((r) => setTimeout(r, 10));

test('requests split across chunks are answered in order', async () => {
  const { socket, written } = fakeSocket();
  const handled: HookRequest[] = [];
  serveHookChannel(socket, async (request) => {
    handled.push(request);
    return { verdict: 'ok', messages: [`dotgit: ${request.hook}`] };
  });
  socket.push(Buffer.from(`hook pre-receive\nupdate ${OLD} ${NEW} refs/he`));
  socket.push(Buffer.from(`ads/main\nend\nhook post-receive\nend\n`));
  await settle();
  expect(handled.map((h) => h.hook)).toEqual(['pre-receive', 'post-receive']);
  expect(written.join('')).toBe('message dotgit: pre-receive\nok\nmessage dotgit: post-receive\nok\n');
});

test('a malformed request is answered `error 400` with the reason, and the channel ends', async () => {
  const { socket, written } = fakeSocket();
  let calls = 0;
  serveHookChannel(socket, async () => {
    calls++;
    return { verdict: 'ok', messages: [] };
  });
  const ended = new Promise((r) => socket.once('finish', r));
  socket.push(Buffer.from('hook pre-receive\nbogus line\nend\n'));
  await ended;
  expect(calls).toBe(0);
  expect(written.join('')).toBe('message dotgit: unknown line "bogus"\nerror 400\n');
});

test("hooks are taken only in git's order: pre-receive first and once, post-receive last and once", () => {
  expect(() => assertHookOrder([], 'pre-receive')).not.toThrow();
  expect(() => assertHookOrder(['pre-receive'], 'reference-transaction')).not.toThrow();
  expect(() => assertHookOrder(['pre-receive', 'reference-transaction', 'reference-transaction'], 'post-receive')).not.toThrow();
  expect(() => assertHookOrder(['pre-receive'], 'pre-receive')).toThrow('pre-receive after pre-receive is not an order git runs hooks in');
  expect(() => assertHookOrder([], 'reference-transaction')).toThrow('reference-transaction after nothing is not an order git runs hooks in');
  expect(() => assertHookOrder([], 'post-receive')).toThrow('post-receive after nothing');
  expect(() => assertHookOrder(['pre-receive', 'post-receive'], 'post-receive')).toThrow('post-receive after pre-receive, post-receive');
  expect(() => assertHookOrder(['pre-receive', 'post-receive'], 'reference-transaction')).toThrow('reference-transaction after pre-receive, post-receive');
});
