import fs from 'node:fs';
import net from 'node:net';
import { ChildExitedError } from './errors';

/**
 * A TCP port that is free on `host` right now. Picked at random *below* the kernel's ephemeral
 * range: ports handed out by bind(0) (Temporal picks several for its internal services while it
 * starts) then cannot collide with it. Another process may still take it before we use it;
 * `withPortRetry` covers that.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const min = 10_000;
  const max = ephemeralRangeStart() - 1;
  for (let i = 0; max - min > 1000 && i < 50; i++) {
    const port = min + Math.floor(Math.random() * (max - min));
    if (await tryBind(host, port)) return port;
  }
  const port = await tryBind(host, 0);
  if (!port) throw new Error(`no free TCP port on ${host}`);
  return port;
}

/** `port: 0` in the provisioning options means "pick a free one" (tests); anything else is used as is. */
export async function resolvePort(port: number, host = '127.0.0.1'): Promise<number> {
  return port === 0 ? freePort(host) : port;
}

/**
 * Run `start` again (up to `attempts` times) when it failed because a port it picked itself was
 * taken in the meantime. Fixed ports are not retried: that conflict is the caller's to fix.
 */
export async function withPortRetry<T>(autoPicked: boolean, start: () => Promise<T>, attempts = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await start();
    } catch (err) {
      const portTaken = err instanceof ChildExitedError && /address already in use/i.test(err.logTail);
      if (!autoPicked || !portTaken || i >= attempts) throw err;
    }
  }
}

function ephemeralRangeStart(): number {
  try {
    const lo = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(lo) && lo > 1024 ? lo : 32768;
  } catch {
    return 32768;
  }
}

/** Resolves the bound port, or false when `port` is in use. */
function tryBind(host: string, port: number): Promise<number | false> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' || err.code === 'EACCES' ? resolve(false) : reject(err)));
    server.listen({ port, host, exclusive: true }, () => {
      const address = server.address();
      const bound = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(bound > 0 ? bound : false));
    });
  });
}
