import http from 'node:http';
import type { Duplex } from 'node:stream';
import { errorBody } from '../core/http';
import type { UpstreamInstance, UpstreamPool } from '../core/upstream-pool';
import { INTERNAL_HEADERS, upstreamRequest } from './proxy';

/**
 * Passes an HTTP upgrade (WebSocket) through to an instance of `pool`: the handshake goes with our
 * headers, the upstream's 101 comes back, then bytes flow both ways untouched, without buffering.
 * A handshake whose connection could not be made goes to the next instance (that one is taken
 * out); with none left the client gets 503 with `Retry-After`.
 */
export function proxyUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, pool: UpstreamPool, extraHeaders: Record<string, string>): void {
  const tried = new Set<UpstreamInstance>();
  let lastError: Error | undefined;
  const next = () => {
    const instance = pool.pick(tried);
    if (!instance) {
      if (lastError && !pool.allDown()) {
        socket.end('HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      const body = JSON.stringify(errorBody('upstream_unavailable', `no ${pool.name} instance is reachable (${pool.describe()}); retry shortly`, extraHeaders['x-request-id']));
      socket.end(`HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nRetry-After: 2\r\nConnection: close\r\n\r\n${body}`);
      return;
    }
    tried.add(instance);
    handshake(instance, (err) => {
      lastError = err;
      pool.markDown(instance, (err as NodeJS.ErrnoException).code ?? err.message);
      next();
    });
  };

  const handshake = (instance: UpstreamInstance, notSent: (err: Error) => void) => {
    const upstream = instance.url;
    const headers: http.OutgoingHttpHeaders = { ...req.headers };
    for (const name of INTERNAL_HEADERS) delete headers[name];
    Object.assign(headers, extraHeaders, { host: upstream.host });
    // Not on a kept-alive socket of the pool: an upgraded socket leaves the agent for good.
    const out = upstreamRequest(upstream, { agent: false, method: req.method, path: req.url, headers });
    let connected = false;
    out.once('socket', (s) => {
      if (!s.connecting) connected = true;
      else s.once('connect', () => (connected = true));
    });
    out.on('upgrade', (res, upSocket, upHead) => {
      const lines = [`HTTP/1.1 ${res.statusCode} ${res.statusMessage}`];
      for (let i = 0; i < res.rawHeaders.length; i += 2) lines.push(`${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}`);
      socket.write(lines.join('\r\n') + '\r\n\r\n');
      if (upHead.length) socket.write(upHead);
      if (head.length) upSocket.write(head);
      upSocket.pipe(socket).pipe(upSocket);
      const end = () => {
        upSocket.destroy();
        socket.destroy();
      };
      upSocket.on('error', end);
      socket.on('error', end);
      upSocket.on('close', end);
      socket.on('close', end);
    });
    out.on('response', (res) => {
      // The upstream refused the upgrade: relay its answer and close.
      const lines = [`HTTP/1.1 ${res.statusCode} ${res.statusMessage}`, 'Connection: close'];
      socket.write(lines.join('\r\n') + '\r\n\r\n');
      res.pipe(socket);
    });
    out.on('error', (err) => {
      if (!connected) return notSent(err);
      socket.end('HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    });
    out.end();
  };
  next();
}
