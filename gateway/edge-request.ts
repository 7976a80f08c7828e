import type http from 'node:http';
import type { Principal } from '../core/principal';

/**
 * A request as the gateway's forwarding path reads it: node's own request with the few fields
 * express would add (ADR 0048). Forwarded requests never enter express, whose per-request set-up
 * (new prototypes for the request and the response, the router's walk) was about a quarter of the
 * gateway's CPU per request; express's own Request has the same fields, so the edge checks and the
 * error answers serve both.
 */
export interface EdgeRequest extends http.IncomingMessage {
  method: string;
  url: string;
  /** The path of the request target, as sent (not decoded). */
  path: string;
  originalUrl: string;
  /** The client's address (the gateway trusts no forwarding headers). */
  ip?: string;
  requestId?: string;
  /** The authenticated caller, once known (null = anonymous). */
  principal?: Principal | null;
  header(name: string): string | undefined;
}

/** The path of a request target (`/a/b?x=1` → `/a/b`). */
export function pathOf(target: string): string {
  const q = target.indexOf('?');
  return q >= 0 ? target.slice(0, q) : target;
}

/** The raw query of a request target (`/a/b?x=1` → `x=1`), undefined without one. */
export function queryOf(target: string): string | undefined {
  const q = target.indexOf('?');
  return q >= 0 ? target.slice(q + 1) : undefined;
}

function header(this: http.IncomingMessage, name: string): string | undefined {
  const value = this.headers[name.toLowerCase()];
  return Array.isArray(value) ? value.join(', ') : value;
}

/** `req` with the EdgeRequest fields set (own fields: the object keeps node's prototype). */
export function asEdgeRequest(req: http.IncomingMessage, path: string): EdgeRequest {
  const edge = req as EdgeRequest;
  edge.path = path;
  edge.originalUrl = edge.url;
  edge.ip = req.socket.remoteAddress;
  edge.header = header;
  return edge;
}

/** A JSON answer (errors and refusals) without express's response helpers. */
export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers?: Record<string, string>): void {
  const text = JSON.stringify(body);
  if (headers) for (const k in headers) res.setHeader(k, headers[k]);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}
