import type { Request, Response } from 'express';
import { createSession } from 'better-sse';
import type { RunEvent } from '../core/run-events';

/** Opens the events of a run or deploy after `after`; throws (→ 4xx) before anything is sent. */
export type EventSource = (after: string, signal: AbortSignal) => Promise<AsyncIterable<RunEvent>>;

/** Where a client resumes: the `Last-Event-ID` header (EventSource sends it on reconnect) or `?lastEventId=`. */
export function resumePoint(headerValue: string | undefined, query: unknown): string {
  const q = (query as { lastEventId?: unknown }).lastEventId;
  return (headerValue ?? (typeof q === 'string' ? q : '')).trim();
}

/**
 * Serves events as Server-Sent Events (better-sse): each with the stream id as its `id`, so a
 * reconnecting EventSource resumes exactly after the last event it received. The response ends
 * after the terminal `status` event; a client that goes away stops the reading at once.
 */
export async function serveSse(req: Request, res: Response, open: EventSource): Promise<void> {
  const gone = new AbortController();
  const events = await open(resumePoint(req.header('last-event-id'), req.query), gone.signal);
  res.on('close', () => gone.abort());
  const session = await createSession(req, res, {
    keepAlive: 15_000,
    retry: 1000,
    // Proxies (nginx) must not buffer the stream.
    headers: { 'Cache-Control': 'no-cache, no-transform', 'X-Accel-Buffering': 'no' },
  });
  try {
    for await (const e of events) {
      if (!session.isConnected) break;
      session.push(e.data, e.event, e.id);
    }
  } finally {
    gone.abort();
    if (!res.writableEnded) res.end();
  }
}
