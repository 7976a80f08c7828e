import type { Server } from 'node:http';

/**
 * How long the gateway's upstreams (api, git-server) keep an idle kept-alive connection open.
 * Node's default is 5 s: a gateway that picks a pooled connection at the moment its upstream closes
 * it as idle sends the request into a reset, and a push's streamed body cannot be sent again (502).
 */
export const UPSTREAM_KEEP_ALIVE_MS = 65_000;

/** How long the gateway keeps an idle upstream connection for reuse: well inside UPSTREAM_KEEP_ALIVE_MS. */
export const GATEWAY_UPSTREAM_IDLE_MS = 60_000;

/** An upstream's server keeps idle connections longer than the gateway keeps them pooled. */
export function keepUpstreamConnections(server: Server): Server {
  server.keepAliveTimeout = UPSTREAM_KEEP_ALIVE_MS;
  return server;
}
