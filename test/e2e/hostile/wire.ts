import net from 'node:net';
import type { Req } from './types';

export interface WireAnswer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  text: string;
  json?: any;
}

/**
 * Sends one request byte for byte over a fresh connection (fetch and node:http refuse to send
 * malformed headers, which is what some cases are) and parses the answer: status, headers, body
 * (Content-Length, chunked, or up to close). Only the first answer on the connection is parsed.
 */
export function send(baseUrl: string, req: Req, timeoutMs = 20_000): Promise<WireAnswer> {
  const { hostname, port } = new URL(baseUrl);
  let body: Buffer;
  const headers = [...(req.headers ?? [])];
  const has = (n: string) => headers.some(([k]) => k.toLowerCase() === n);
  if (req.body === undefined) body = Buffer.alloc(0);
  else if (Buffer.isBuffer(req.body)) body = req.body;
  else if (typeof req.body === 'string') body = Buffer.from(req.body);
  else {
    body = Buffer.from(JSON.stringify(req.body));
    if (!has('content-type')) headers.push(['Content-Type', 'application/json']);
  }
  if (req.contentLength !== null && !has('content-length') && (req.body !== undefined || req.contentLength !== undefined)) {
    headers.push(['Content-Length', req.contentLength ?? String(body.length)]);
  }
  const head = [`${req.method} ${req.path} HTTP/1.1`, `Host: ${hostname}:${port}`, ...headers.map(([k, v]) => `${k}: ${v}`), 'Connection: close', '', ''].join('\r\n');
  const wire = Buffer.concat([Buffer.from(head, 'latin1'), body, Buffer.from(req.trailing ?? '', 'latin1')]);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    let settled = false;
    const done = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) return reject(err);
      try {
        resolve(parse(Buffer.concat(chunks)));
      } catch (e) {
        reject(e as Error);
      }
    };
    const timer = setTimeout(() => done(new Error(`no complete answer within ${timeoutMs} ms (got ${Buffer.concat(chunks).length} bytes)`)), timeoutMs);
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      if (complete(Buffer.concat(chunks))) done();
    });
    socket.on('close', () => done());
    // The server may close while we still write (it refused early): the answer read so far counts.
    socket.on('error', (err) => (chunks.length > 0 ? done() : done(err)));
    socket.write(wire);
  });
}

function splitHead(buf: Buffer): { status: number; headers: Record<string, string>; rest: Buffer } | undefined {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  if (!m) throw new Error(`not an HTTP answer: ${JSON.stringify(lines[0])}`);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: Number(m[1]), headers, rest: buf.subarray(end + 4) };
}

/** The body if it is complete, else undefined. */
function bodyOf(h: { headers: Record<string, string>; rest: Buffer }, closed: boolean): Buffer | undefined {
  if (h.headers['transfer-encoding']?.toLowerCase().includes('chunked')) {
    const parts: Buffer[] = [];
    let at = 0;
    for (;;) {
      const eol = h.rest.indexOf('\r\n', at);
      if (eol < 0) return closed ? Buffer.concat(parts) : undefined;
      const size = parseInt(h.rest.subarray(at, eol).toString('latin1'), 16);
      if (Number.isNaN(size)) return Buffer.concat(parts);
      if (size === 0) return Buffer.concat(parts);
      if (h.rest.length < eol + 2 + size) return closed ? Buffer.concat([...parts, h.rest.subarray(eol + 2)]) : undefined;
      parts.push(h.rest.subarray(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
    }
  }
  if (h.headers['content-length'] !== undefined) {
    const n = Number(h.headers['content-length']);
    if (h.rest.length >= n) return h.rest.subarray(0, n);
    return closed ? h.rest : undefined;
  }
  return closed ? h.rest : undefined;
}

function complete(buf: Buffer): boolean {
  const h = splitHead(buf);
  return h !== undefined && bodyOf(h, false) !== undefined;
}

function parse(buf: Buffer): WireAnswer {
  if (buf.length === 0) throw new Error('the connection closed without an answer');
  const h = splitHead(buf);
  if (!h) throw new Error(`incomplete answer: ${JSON.stringify(buf.toString('latin1').slice(0, 200))}`);
  const body = bodyOf(h, true) ?? Buffer.alloc(0);
  const text = body.toString('utf8');
  let json: any;
  if ((h.headers['content-type'] ?? '').includes('json')) {
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
  }
  return { status: h.status, headers: h.headers, body, text, json };
}
