// The gateway bench's bound (BENCH_ONLY=gateway): a reverse proxy with no logic at all, in front of
// the same api, so BENCHMARKS.md can say what throughput ratio a zero-logic Node hop reaches on the
// bench machine and how far the gateway is from it. node:http only: one kept-alive agent, request
// and answer piped, the client's headers passed as they are (the client sends the signed identity
// itself), no auth, limits, routing, retries, metrics or logging.
//   node bench/bare-proxy.cjs http://127.0.0.1:<api port>
// Listens on an ephemeral port of 127.0.0.1 and prints `BARE_PROXY_PORT <port>` once listening.
// Plain JavaScript so the measured process runs no loader.
'use strict';
const http = require('node:http');

const upstream = new URL(process.argv[2] ?? '');
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
// Hop-by-hop headers are not sent on (as any proxy must); everything else is.
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'host']);

const server = http.createServer((req, res) => {
  const headers = {};
  for (const k in req.headers) if (!HOP.has(k)) headers[k] = req.headers[k];
  const out = http.request({ agent, hostname: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers }, (up) => {
    const answer = {};
    for (const k in up.headers) if (!HOP.has(k)) answer[k] = up.headers[k];
    res.writeHead(up.statusCode ?? 502, answer);
    up.pipe(res);
  });
  out.on('error', () => {
    if (res.headersSent) res.destroy();
    else res.writeHead(502).end();
  });
  req.pipe(out);
});
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => console.log(`BARE_PROXY_PORT ${server.address().port}`));
process.on('SIGTERM', () => process.exit(0));
// The bench holds our stdin open: when it goes (even killed), so do we.
process.stdin.on('end', () => process.exit(0)).on('error', () => process.exit(0)).resume();
