/**
 * A Server-Sent Events client for the benchmark that stamps every event with the wall-clock time
 * its bytes were read, so latencies can be compared with timestamps taken elsewhere on the same
 * machine (Redis stream ids, `date +%s%N` inside the sandbox).
 */

export interface TimedSseEvent {
  id?: string;
  event: string;
  data: unknown;
  /** Date.now() when the chunk holding this event was read. */
  receivedAt: number;
}

export interface SseConnection {
  /** Date.now() when the response headers arrived: the server is following the stream from here on. */
  connectedAt: number;
  events: AsyncGenerator<TimedSseEvent>;
}

/** Opens `url` as an SSE stream; rejects unless the answer is 200 `text/event-stream`. Abort `signal` to drop it. */
export async function openSse(url: string, token: string, signal: AbortSignal): Promise<SseConnection> {
  const res = await fetch(url, { headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` }, signal });
  const connectedAt = Date.now();
  if (res.status !== 200 || !(res.headers.get('content-type') ?? '').startsWith('text/event-stream') || !res.body) {
    throw new Error(`GET ${url} answered ${res.status} ${res.headers.get('content-type')}: ${(await res.text()).slice(0, 300)}`);
  }
  return { connectedAt, events: parse(res.body, signal) };
}

async function* parse(body: ReadableStream<Uint8Array>, signal: AbortSignal): AsyncGenerator<TimedSseEvent> {
  const decoder = new TextDecoder();
  const reader = body.getReader();
  let buffer = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      const receivedAt = Date.now();
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const e: TimedSseEvent = { event: 'message', data: undefined, receivedAt };
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'id') e.id = value;
          else if (field === 'event') e.event = value;
          else if (field === 'data') data.push(value);
        }
        if (data.length === 0) continue; // keep-alive or retry-only block
        e.data = JSON.parse(data.join('\n'));
        yield e;
      }
    }
  } catch (err) {
    if (!signal.aborted) throw err;
  } finally {
    reader.releaseLock();
  }
}

/** The wall-clock milliseconds of a Redis stream entry id (`<ms>-<seq>`): when Redis appended it. */
export function streamIdMs(id: string | undefined): number {
  const m = /^(\d+)-\d+$/.exec(id ?? '');
  return m ? Number(m[1]) : NaN;
}
