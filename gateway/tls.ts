import { readFileSync } from 'node:fs';
import type http from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';

export interface TlsOptions {
  certFile: string;
  keyFile: string;
  /** CA that signs client certificates; set = mutual TLS is offered. */
  clientCaFile?: string;
  /** `required`: no valid client certificate, no request. `optional`: a certificate is one more way to authenticate. */
  clientCert: 'optional' | 'required';
}

/**
 * The HTTPS listener. With a client CA, clients are asked for a certificate (not forced at the
 * handshake, so `optional` works and refusals are readable HTTP answers, not TLS alerts).
 */
export function createHttpsServer(o: TlsOptions, app: http.RequestListener): https.Server {
  return https.createServer(
    {
      cert: readFileSync(o.certFile),
      key: readFileSync(o.keyFile),
      ca: o.clientCaFile ? readFileSync(o.clientCaFile) : undefined,
      requestCert: Boolean(o.clientCaFile),
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
      maxHeaderSize: 16 * 1024,
      headersTimeout: 15_000,
      requestTimeout: 0,
      connectionsCheckingInterval: 1000,
    },
    app,
  );
}

/** The user name of a verified client certificate (its subject CN), or undefined. */
export function clientCertUser(plain: Socket): { username?: string; presented: boolean; authorized: boolean } {
  const socket = plain as TLSSocket;
  if (typeof socket.getPeerCertificate !== 'function') return { presented: false, authorized: false };
  const cert = socket.getPeerCertificate();
  const presented = Boolean(cert && Object.keys(cert).length > 0);
  const cn = presented ? cert.subject?.CN : undefined;
  return { presented, authorized: socket.authorized === true, username: typeof cn === 'string' ? cn : Array.isArray(cn) ? cn[0] : undefined };
}
