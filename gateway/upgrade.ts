import http from 'node:http';
import type { Duplex } from 'node:stream';

/**
 * Passes an HTTP upgrade (WebSocket) through to the upstream: the handshake goes with our headers,
 * the upstream's 101 comes back, then bytes flow both ways untouched, without buffering.
 */
export function proxyUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, upstream: URL, extraHeaders: Record<string, string>): void {
  const headers: http.OutgoingHttpHeaders = { ...req.headers, ...extraHeaders, host: upstream.host };
  delete headers['x-dotgit-service'];
  const out = http.request({ hostname: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers });
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
  out.on('error', () => {
    socket.end('HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  });
  out.end();
}
