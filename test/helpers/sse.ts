export interface SseEvent {
  id?: string;
  event: string;
  data: any;
}

/**
 * Reads a Server-Sent Events response through the gateway, calling `onEvent` per event; resolves
 * when the server ends the stream or `stop()` returns true (then the connection is dropped).
 */
export async function readSse(url: string, opts: { token?: string; lastEventId?: string; stop?: (e: SseEvent, all: SseEvent[]) => boolean }): Promise<{ status: number; events: SseEvent[]; text?: string }> {
  const ctrl = new AbortController();
  const headers: Record<string, string> = { accept: 'text/event-stream' };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.lastEventId) headers['last-event-id'] = opts.lastEventId;
  const res = await fetch(url, { headers, signal: ctrl.signal });
  if (!(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) return { status: res.status, events: [], text: await res.text() };
  const events: SseEvent[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  const reader = res.body!.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const e: SseEvent = { event: 'message', data: undefined };
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          const [field, ...rest] = line.split(':');
          const value = rest.join(':').replace(/^ /, '');
          if (field === 'id') e.id = value;
          else if (field === 'event') e.event = value;
          else if (field === 'data') data.push(value);
        }
        if (data.length === 0) continue; // keep-alive or retry-only block
        e.data = JSON.parse(data.join('\n'));
        events.push(e);
        if (opts.stop?.(e, events)) {
          ctrl.abort();
          return { status: res.status, events };
        }
      }
    }
  } catch (err) {
    if (!ctrl.signal.aborted) throw err;
  }
  return { status: res.status, events };
}
