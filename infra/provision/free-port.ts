import net from 'node:net';

/**
 * A TCP port that is free on `host` right now: bind port 0, read what the kernel picked, close.
 * Another process may take it before we use it; the window is small enough for tests.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

/** `port: 0` in the provisioning options means "pick a free one" (tests); anything else is used as is. */
export async function resolvePort(port: number, host = '127.0.0.1'): Promise<number> {
  return port === 0 ? freePort(host) : port;
}
