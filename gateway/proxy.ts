import http from 'node:http';
import type { Request, Response } from 'express';
import { errorBody } from '../core/http';

/** Hop-by-hop headers (RFC 9110 §7.6.1) and our internal ones never cross the gateway as sent. */
const DROP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'host', 'x-dotgit-identity', 'x-dotgit-service']);

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

/**
 * Streams the request to `upstream` and the answer back, without buffering either (git packs can be
 * large); `extraHeaders` carry the request id and the signed identity.
 */
export function forward(req: Request, res: Response, upstream: URL, extraHeaders: Record<string, string>): void {
  const headers: http.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(req.headers)) if (!DROP.has(k) && v !== undefined) headers[k] = v;
  Object.assign(headers, extraHeaders);
  const out = http.request(
    { agent, hostname: upstream.hostname, port: upstream.port, method: req.method, path: req.originalUrl, headers },
    (up) => {
      const resHeaders: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(up.headers)) if (!DROP.has(k) && v !== undefined) resHeaders[k] = v;
      res.writeHead(up.statusCode ?? 502, resHeaders);
      up.pipe(res);
      up.on('error', () => res.destroy());
    },
  );
  out.on('error', (err) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.status(502).json(errorBody('bad_gateway', `upstream unavailable: ${err.message}`, extraHeaders['x-request-id']));
  });
  // A client that goes away (mid-request or mid-answer) must free the upstream socket at once,
  // or slow readers could use up the agent's sockets.
  res.on('close', () => {
    if (!res.writableFinished) out.destroy();
  });
  req.pipe(out);
}
