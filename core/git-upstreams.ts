/**
 * Calls to "any git-server" (ADR 0014: every git-server forwards a repository's requests to the
 * node that holds it), over `DOTGIT_GIT_UPSTREAMS`. Calls start at the next instance in turn; one
 * that cannot be reached, or answers 502/503 (down, draining), never did the work, so the same call
 * goes to the next instance. Any other answer is the answer.
 */
let next = 0;

/** Statuses of an instance that did not handle the request (a draining git-server answers 503). */
const NOT_HANDLED = new Set([502, 503]);

export async function fetchFromGitServer(upstreams: readonly string[], pathAndQuery: string, init: RequestInit = {}): Promise<Response> {
  if (upstreams.length === 0) throw new Error('no git-server configured (DOTGIT_GIT_UPSTREAMS)');
  const start = next++ % upstreams.length;
  let last: unknown;
  for (let i = 0; i < upstreams.length; i++) {
    const base = upstreams[(start + i) % upstreams.length]!.replace(/\/+$/, '');
    try {
      const res = await fetch(`${base}${pathAndQuery}`, init);
      if (NOT_HANDLED.has(res.status) && i < upstreams.length - 1) {
        last = new Error(`${base} answered ${res.status}: ${await res.text().catch(() => '')}`);
        continue;
      }
      return res;
    } catch (err) {
      // A timeout or cancel of the caller's own signal ends the call; a refused connection tries the next.
      if (init.signal?.aborted) throw err;
      last = new Error(`${base}: ${errorText(err)}`);
    }
  }
  throw new Error(`no git-server answered: ${errorText(last)}`);
}

/** fetch's "fetch failed" says nothing; its cause (ECONNREFUSED …) does. */
function errorText(err: unknown): string {
  const e = err as Error & { cause?: Error & { code?: string } };
  return [e?.message, e?.cause?.code ?? e?.cause?.message].filter(Boolean).join(': ');
}

/** The error message of a dotgit error answer (`{error: {message}}`), else the body's start. */
export async function answerMessage(res: Response): Promise<string> {
  const text = await res.text().catch(() => '');
  try {
    const message = (JSON.parse(text) as { error?: { message?: unknown } }).error?.message;
    if (typeof message === 'string') return message;
  } catch {
    // not JSON
  }
  return text.slice(0, 500) || `HTTP ${res.status}`;
}
