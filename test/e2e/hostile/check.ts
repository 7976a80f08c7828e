import type { Expect } from './types';
import type { WireAnswer } from './wire';

const short = (s: string, n = 240) => (s.length > n ? `${s.slice(0, n)}…` : s);

/** Why an answer does not meet the case's expectation, or undefined when it does. */
export function problemWith(expect: Expect, a: WireAnswer): string | undefined {
  const got = `${a.status} ${short(a.text.replace(/[\x00-\x08\x0b-\x1f]/g, '.'))}`;
  if (a.status === 429) return `rate-limited (the test platform's limits must stay out of the way): ${got}`;
  if (expect.shape === 'git' && expect.gitErrOk && a.status === 200) {
    // git's own error channel: an ERR pkt-line (v0/v2) or a side-band-3 error, naming the problem.
    const err = /(?:^|[0-9a-f]{4})ERR ([^\n]*)|\x03([^\n]*)/.exec(a.body.toString('latin1'));
    if (!err) return `expected git's own ERR line, got ${got}`;
    return expect.message.test(err[1] ?? err[2]) ? undefined : `git's error does not match ${expect.message}: ${got}`;
  }
  const statusOk = expect.status === undefined ? a.status >= 400 && a.status < 500 : ([] as number[]).concat(expect.status).includes(a.status);
  if (!statusOk) return `expected ${expect.status ?? '4xx'}, got ${got}`;
  if (expect.shape === 'api') {
    const e = a.json?.error;
    if (!e || typeof e.code !== 'string' || typeof e.message !== 'string' || !('requestId' in e)) return `expected {error:{code,message,requestId}}, got ${got}`;
    if (a.headers['x-request-id'] && e.requestId !== a.headers['x-request-id']) return `requestId ${e.requestId} is not the X-Request-Id ${a.headers['x-request-id']}`;
    if (!expect.message.test(e.message)) return `message does not match ${expect.message}: ${got}`;
    if (expect.code && !expect.code.test(e.code)) return `code does not match ${expect.code}: ${got}`;
    return undefined;
  }
  if (expect.shape === 'oauth') {
    const b = a.json;
    if (!b || typeof b.error !== 'string' || typeof b.error_description !== 'string') return `expected OAuth {error, error_description}, got ${got}`;
    return expect.message.test(`${b.error}: ${b.error_description}`) ? undefined : `OAuth error does not match ${expect.message}: ${got}`;
  }
  const said = a.json?.error?.message ?? a.text;
  return expect.message.test(said) ? undefined : `git refusal does not match ${expect.message}: ${got}`;
}
