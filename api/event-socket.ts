import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { AuthenticationError, NotFoundError } from '../core/errors';
import { errorBody, httpErrorOf } from '../core/http-errors';
import { IDENTITY_HEADER, verifyIdentity } from '../core/internal-identity';
import type { Logger } from '../core/logger';
import type { Principal } from '../core/principal';
import type { EventSource } from './event-stream';
import { resumePoint } from './event-stream';

/** Which event feed a WebSocket path asks for; undefined when the path has none. */
export type EventRoute = (path: string, principal: Principal | null) => EventSource | undefined;

/** Frames a client may send are tiny (none are expected); anything bigger closes the socket. */
const MAX_CLIENT_FRAME = 1024;

/**
 * The WebSocket flavour of the run and deploy event feeds: the same events as the SSE endpoint,
 * one JSON text frame each (`{id, event, data}`), resumable with `?lastEventId=` or a
 * `Last-Event-ID` header; the server closes with 1000 after the terminal status. The identity comes
 * from the gateway's signed header, exactly as for HTTP requests.
 */
export function attachEventSockets(server: http.Server, o: { internalSecret: string; log: Logger; route: EventRoute }): void {
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_CLIENT_FRAME });
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://api.invalid');
    const requestId = (req.headers['x-request-id'] as string | undefined) ?? undefined;
    const refuse = (err: unknown) => {
      const mapped = httpErrorOf(err);
      const status = mapped?.status ?? 500;
      const body = JSON.stringify(errorBody(mapped?.code ?? 'internal', mapped?.message ?? 'internal error', requestId));
      socket.end(`HTTP/1.1 ${status} Refused\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    };
    void (async () => {
      const identity = await verifyIdentity(o.internalSecret, req.headers[IDENTITY_HEADER] as string | undefined).catch((err: unknown) => {
        throw new AuthenticationError('the request did not come through the gateway', { cause: err });
      });
      const open = o.route(url.pathname, identity.principal);
      if (!open) throw new NotFoundError(`no WebSocket feed at ${url.pathname}`);
      const gone = new AbortController();
      // Access is checked here, before the handshake completes, so a refusal is a plain HTTP 4xx.
      const events = await open(resumePoint(req.headers['last-event-id'] as string | undefined, Object.fromEntries(url.searchParams)), gone.signal);
      wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
        ws.on('close', () => gone.abort());
        ws.on('error', () => gone.abort());
        void (async () => {
          try {
            for await (const e of events) {
              if (ws.readyState !== ws.OPEN) break;
              ws.send(JSON.stringify(e));
            }
            ws.close(1000, 'done');
          } catch (err) {
            o.log.warn({ err, requestId }, 'event socket failed');
            ws.close(1011, 'internal error');
          } finally {
            gone.abort();
          }
        })();
      });
    })().catch(refuse);
  });
}
