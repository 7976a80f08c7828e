/**
 * The gateway's `/readyz` (ADR 0028) asks each upstream's instances for theirs. An upstream is
 * ready while one of its instances is (requests go to the ready ones); when none is, the check
 * rejects with what the instances name as failing (`127.0.0.1:8081: temporal, redis`), so the
 * gateway's answer says which dependency behind which part is down.
 */
export function upstreamReadiness(urls: readonly (string | URL)[], timeoutMs = 1500): () => Promise<void> {
  return async () => {
    const problems = await Promise.all(urls.map((u) => instanceProblem(new URL(u), timeoutMs)));
    if (problems.some((p) => p === undefined)) return;
    throw new Error(problems.join('; '));
  };
}

/** Undefined when the instance is ready; else what is wrong, prefixed by its host:port. */
async function instanceProblem(base: URL, timeoutMs: number): Promise<string | undefined> {
  try {
    const res = await fetch(new URL('/readyz', base), { signal: AbortSignal.timeout(timeoutMs) });
    if (res.ok) return undefined;
    const body = (await res.json().catch(() => ({}))) as { failing?: unknown; status?: unknown };
    const failing = Array.isArray(body.failing) ? body.failing.map(String).join(', ') : `${res.status} ${typeof body.status === 'string' ? body.status : ''}`.trim();
    return `${base.host}: ${failing}`;
  } catch (err) {
    return `${base.host}: unreachable (${(err as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (err as Error).message})`;
  }
}
