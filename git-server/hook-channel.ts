import type { Duplex } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { InputError } from '../core/errors';

/**
 * How the hooks talk to the git-server (ADR 0047): over a socket the git-server hands
 * `git receive-pack` as fd 3, which git passes on to every hook it runs. A hook is a shell that
 * writes its request there and reads the answer (git-server/hooks/dotgit-hook.sh): no curl, no
 * HTTP, no token — only this push's processes hold the socket, so the git-server knows whose push
 * is asking.
 *
 * A request, line by line (a hook's input holds no newline: git allows none in refs or push options):
 *
 *     hook <pre-receive | reference-transaction | post-receive> [<state>]
 *     option <push option>              (each, in order)
 *     update <old> <new> <ref>[ nff]    (each; ` nff` when pre-receive found history rewritten)
 *     end
 *
 * The answer: `message <line>` for each line git shows as `remote: …`, then `ok`, `deny` (a gate
 * refused) or `error <status>` (the git-server could not decide; a gate then fails). Git runs a
 * push's hooks one after another, so requests are answered in order.
 */

export const HOOK_NAMES = ['pre-receive', 'reference-transaction', 'post-receive'] as const;
export type HookName = (typeof HOOK_NAMES)[number];

export interface HookRequest {
  hook: HookName;
  state?: string;
  pushOptions: string[];
  /** `{ oldSha, newSha, ref, nonFastForward }` as sent; parseUpdates (hook-support.ts) validates them. */
  updates: unknown[];
}

export interface HookAnswer {
  verdict: 'ok' | 'deny' | 'error';
  /** With `error`: the HTTP status the failure maps to (the hook prints it). */
  status?: number;
  messages: string[];
}

/** A request larger than this is refused (the HTTP hook routes took 1 MiB). */
export const MAX_HOOK_REQUEST_BYTES = 1 << 20;
/** Push options past this many are ignored, as git's own limit for the server side suggests. */
const MAX_PUSH_OPTIONS = 100;

/** Reads requests line by line; answers the finished request, or throws on a malformed line. */
export class HookRequestReader {
  private current: HookRequest | undefined;
  private bytes = 0;

  /** One line without its newline; the finished request on `end`. */
  line(text: string): HookRequest | undefined {
    this.bytes += Buffer.byteLength(text) + 1;
    if (this.bytes > MAX_HOOK_REQUEST_BYTES) throw new HookChannelError(413, `a hook request is limited to ${MAX_HOOK_REQUEST_BYTES} bytes`);
    const space = text.indexOf(' ');
    const word = space < 0 ? text : text.slice(0, space);
    const rest = space < 0 ? '' : text.slice(space + 1);
    if (word === 'hook') {
      const [hook, state] = rest.split(' ');
      if (!(HOOK_NAMES as readonly string[]).includes(hook)) throw new HookChannelError(400, `unknown hook ${JSON.stringify(hook.slice(0, 40))}`);
      this.current = { hook: hook as HookName, ...(state ? { state } : {}), pushOptions: [], updates: [] };
      return undefined;
    }
    const request = this.current;
    if (!request) throw new HookChannelError(400, `${JSON.stringify(word.slice(0, 40))} before a hook line`);
    if (word === 'option') {
      if (request.pushOptions.length < MAX_PUSH_OPTIONS) request.pushOptions.push(rest);
    } else if (word === 'update') {
      const [oldSha, newSha, ref, flag] = rest.split(' ');
      request.updates.push({ oldSha, newSha, ref, nonFastForward: flag === 'nff' });
    } else if (word === 'end') {
      this.current = undefined;
      this.bytes = 0;
      return request;
    } else {
      throw new HookChannelError(400, `unknown line ${JSON.stringify(word.slice(0, 40))}`);
    }
    return undefined;
  }
}

/** A request the channel could not read; answered as `error <status>`. */
export class HookChannelError extends Error {
  override readonly name = 'HookChannelError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A push's hooks come in git's order: pre-receive once and first, then any number of
 * reference-transaction (`prepared`, `aborted`), then post-receive at most once and last. Anything else on the
 * channel did not come from git (ADR 0047).
 */
export function assertHookOrder(seen: HookName[], next: HookName): void {
  const ok =
    next === 'pre-receive' ? seen.length === 0 : seen[0] === 'pre-receive' && !seen.includes('post-receive');
  if (!ok) throw new InputError(`${next} after ${seen.length === 0 ? 'nothing' : seen.join(', ')} is not an order git runs hooks in`);
}

/** The answer's lines, as the hook reads them. */
export function formatHookAnswer(answer: HookAnswer): string {
  const messages = answer.messages.flatMap((m) => m.split('\n')).map((m) => `message ${m}\n`);
  const verdict = answer.verdict === 'error' ? `error ${answer.status ?? 500}` : answer.verdict;
  return `${messages.join('')}${verdict}\n`;
}

/**
 * Serves one push's hooks on `socket` (the git-server's end of receive-pack's fd 3). `handle`
 * answers each request; it must not throw (it turns failures into `error` answers). A malformed
 * request is answered `error 400` and ends the channel: a hook waiting on it sees the answer, any
 * later one finds the channel gone and fails as it would without the git-server.
 */
export function serveHookChannel(socket: Duplex, handle: (request: HookRequest) => Promise<HookAnswer>): void {
  const decoder = new StringDecoder('utf8');
  const reader = new HookRequestReader();
  let pending = '';
  let answered: Promise<void> = Promise.resolve();
  const reply = (answer: HookAnswer) => {
    if (!socket.destroyed) socket.write(formatHookAnswer(answer));
  };
  socket.on('error', () => undefined); // receive-pack gone: nothing left to answer
  socket.on('data', (chunk: Buffer) => {
    pending += decoder.write(chunk);
    try {
      for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
        const request = reader.line(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
        if (request) answered = answered.then(() => handle(request).then(reply));
      }
      if (pending.length > MAX_HOOK_REQUEST_BYTES) reader.line(pending); // one line past the limit
    } catch (err) {
      const status = err instanceof HookChannelError ? err.status : 400;
      answered = answered.then(() => {
        reply({ verdict: 'error', status, messages: [`dotgit: ${(err as Error).message}`] });
        socket.end();
      });
      socket.removeAllListeners('data');
      socket.resume();
    }
  });
}
