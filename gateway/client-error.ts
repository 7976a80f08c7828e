import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { errorBody } from '../core/http';
import type { Logger } from '../core/logger';
import { IDEMPOTENCY_KEY_HEADER, idempotencyKeyProblem } from './idempotency';

/** What Node's HTTP parser (llhttp) attaches to the errors it reports as 'clientError'. */
export interface ParserError extends Error {
  code?: string;
  reason?: string;
  bytesParsed?: number;
  rawPacket?: Buffer;
}

/** The header being parsed at the parser's error offset: its name, whether the bad byte is in the name, the value so far, the byte. */
function headerAt(raw: Buffer, offset: number): { name: string; inName: boolean; value: string; byte: number } | undefined {
  if (offset < 0 || offset >= raw.length) return undefined;
  const start = raw.lastIndexOf('\n', offset - 1) + 1;
  if (start === 0) return undefined; // still the request line
  const end = raw.indexOf('\r', offset);
  const line = raw.subarray(start, end < 0 ? raw.length : end).toString('latin1');
  const colon = line.indexOf(':');
  const inName = colon < 0 || start + colon > offset;
  return { name: (inName ? line.slice(0, offset - start) : line.slice(0, colon)).slice(0, 100), inName, value: colon < 0 ? '' : line.slice(colon + 1).trim(), byte: raw[offset] };
}

const hex = (byte: number) => `0x${byte.toString(16).padStart(2, '0')}`;

/** The answer to a request Node's parser refused: status, CONTRACT code, and a message naming the problem. */
export function describeClientError(err: ParserError, maxHeaderBytes: number): { status: number; code: string; message: string } {
  const reason = err.reason ?? err.message.replace(/^Parse Error: /, '');
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return { status: 431, code: 'headers_too_large', message: `the request headers are larger than ${maxHeaderBytes} bytes` };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { status: 408, code: 'request_timeout', message: 'the request headers did not arrive in time' };
    case 'HPE_INVALID_CONTENT_LENGTH':
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
      return { status: 400, code: 'bad_request', message: `malformed request: ${reason}; Content-Length must be given once, as a non-negative number, and not with Transfer-Encoding` };
    case 'HPE_INVALID_TRANSFER_ENCODING':
      return { status: 400, code: 'bad_request', message: `malformed request: ${reason}; the only Transfer-Encoding accepted is chunked, last` };
    case 'HPE_INVALID_HEADER_TOKEN': {
      const h = err.rawPacket && err.bytesParsed !== undefined ? headerAt(err.rawPacket, err.bytesParsed) : undefined;
      if (!h) return { status: 400, code: 'bad_request', message: `malformed request header: ${reason}` };
      if (h.inName) return { status: 400, code: 'bad_request', message: `malformed request header: the header name ${JSON.stringify(h.name + String.fromCharCode(h.byte))}… has byte ${hex(h.byte)}, which header names may not contain` };
      // The same answer the gateway gives a bad key that gets past the parser (waf.ts).
      if (h.name.toLowerCase() === IDEMPOTENCY_KEY_HEADER) {
        return { status: 400, code: 'bad_idempotency_key', message: idempotencyKeyProblem(h.value) ?? `Idempotency-Key has byte ${hex(h.byte)}` };
      }
      return { status: 400, code: 'bad_request', message: `malformed request header: ${h.name} has byte ${hex(h.byte)}, which header values may not contain` };
    }
    default:
      return { status: 400, code: 'bad_request', message: `malformed request: ${reason}` };
  }
}

/**
 * `server.on('clientError')`: Node answers a request its parser refuses with a bare status line; this
 * answers in the CONTRACT's error shape instead, naming the parser's problem, and closes the
 * connection (the parser cannot go on after an error). A response already under way on the socket
 * (the error is in bytes after a complete request) is left to finish, then the socket closes.
 */
export function clientErrorHandler(log: Logger, maxHeaderBytes: number) {
  // The parser repeats its error for every later chunk (a slow client still sending): answered once.
  const answered = new WeakSet<Duplex>();
  return (err: ParserError, socket: Duplex) => {
    if (answered.has(socket)) return;
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const pending = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (pending && !pending.writableEnded) {
      // Bytes after the request that is being answered (smuggled, or after `Connection: close`):
      // that request keeps its answer; nothing more is read on this connection.
      pending.shouldKeepAlive = false;
      if (pending.headersSent || err.code === 'HPE_CLOSED_CONNECTION') {
        pending.once('close', () => socket.destroy());
        return;
      }
    }
    answered.add(socket);
    const { status, code, message } = describeClientError(err, maxHeaderBytes);
    const requestId = randomUUID();
    log.info({ status, code: err.code, reason: err.reason, requestId }, 'refused a malformed request');
    const body = JSON.stringify(errorBody(code, message, requestId));
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `X-Request-Id: ${requestId}\r\nConnection: close\r\n\r\n${body}`,
    );
    // A client that never reads its answer does not keep the socket.
    setTimeout(() => socket.destroy(), 5000).unref();
  };
}
