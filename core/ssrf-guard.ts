import { lookup as dnsLookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';

/**
 * Outbound requests to user-supplied URLs (webhooks) without server-side request forgery: the host
 * is resolved once, every address it resolves to must be a public unicast address, and the
 * connection goes to that vetted address (a pinned `lookup`), so a DNS answer that changes between
 * the check and the connect (rebinding) cannot redirect it. Redirects are never followed.
 */

export type AddressClass =
  | 'public'
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'cgnat'
  | 'link-local'
  | 'metadata'
  | 'unique-local'
  | 'multicast'
  | 'documentation'
  | 'reserved'
  | 'invalid';

/** Thrown when a URL or the address it resolves to may not be contacted; never retried. */
export class SsrfRefusedError extends Error {
  override readonly name = 'SsrfRefusedError';
}

type V4Range = [base: number, prefix: number, cls: AddressClass];
const v4 = (a: string, prefix: number, cls: AddressClass): V4Range => [ipv4ToInt(a)!, prefix, cls];

// Most specific first: 169.254.169.254 (cloud metadata) before the link-local /16 around it.
const V4_RANGES: V4Range[] = [
  v4('169.254.169.254', 32, 'metadata'),
  v4('0.0.0.0', 8, 'unspecified'),
  v4('10.0.0.0', 8, 'private'),
  v4('100.64.0.0', 10, 'cgnat'),
  v4('127.0.0.0', 8, 'loopback'),
  v4('169.254.0.0', 16, 'link-local'),
  v4('172.16.0.0', 12, 'private'),
  v4('192.0.0.0', 24, 'reserved'),
  v4('192.0.2.0', 24, 'documentation'),
  v4('192.88.99.0', 24, 'reserved'),
  v4('192.168.0.0', 16, 'private'),
  v4('198.18.0.0', 15, 'reserved'),
  v4('198.51.100.0', 24, 'documentation'),
  v4('203.0.113.0', 24, 'documentation'),
  v4('224.0.0.0', 4, 'multicast'),
  v4('240.0.0.0', 4, 'reserved'), // includes 255.255.255.255
];

function ipv4ToInt(ip: string): number | undefined {
  const parts = ip.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) return undefined;
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

function classifyV4(n: number): AddressClass {
  for (const [base, prefix, cls] of V4_RANGES) {
    const size = 2 ** (32 - prefix);
    if (n >= base && n < base + size) return cls;
  }
  return 'public';
}

/** Eight 16-bit groups of an IPv6 address (zone id dropped, dotted IPv4 tail expanded). */
function ipv6Groups(ip: string): number[] | undefined {
  let s = ip.replace(/%.*$/, '').toLowerCase();
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (dotted) {
    const n = ipv4ToInt(dotted[1]);
    if (n === undefined) return undefined;
    s = `${s.slice(0, -dotted[1].length)}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const parse = (h: string) => (h === '' ? [] : h.split(':').map((g) => (/^[0-9a-f]{1,4}$/.test(g) ? parseInt(g, 16) : NaN)));
  const head = parse(halves[0]);
  const tail = halves.length === 2 ? parse(halves[1]) : [];
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  if (fill < 0) return undefined;
  const groups = [...head, ...new Array<number>(fill).fill(0), ...tail];
  if (groups.length !== 8 || groups.some((g) => Number.isNaN(g))) return undefined;
  return groups;
}

function classifyV6(g: number[]): AddressClass {
  const zeroUpTo = (n: number) => g.slice(0, n).every((x) => x === 0);
  const tailV4 = (g[6] << 16 >>> 0) + g[7];
  if (zeroUpTo(8)) return 'unspecified';
  if (zeroUpTo(7) && g[7] === 1) return 'loopback';
  // IPv4-mapped (::ffff:a.b.c.d) and IPv4-translated (::ffff:0:a.b.c.d) reach the embedded IPv4 address.
  if (zeroUpTo(5) && g[5] === 0xffff) return classifyV4(tailV4);
  if (zeroUpTo(4) && g[4] === 0xffff && g[5] === 0) return classifyV4(tailV4);
  // NAT64 well-known prefix: the gateway connects to the embedded IPv4 address.
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) return classifyV4(tailV4);
  if (g[0] === 0x64 && g[1] === 0xff9b && g[2] === 1) return 'private';
  // 6to4 embeds an IPv4 address in bits 16–47.
  if (g[0] === 0x2002) return classifyV4((g[1] << 16 >>> 0) + g[2]);
  if (zeroUpTo(6)) return 'reserved'; // IPv4-compatible, deprecated
  if (g[0] === 0x2001 && g[1] === 0x0db8) return 'documentation';
  if (g[0] === 0x2001 && g[1] === 0) return 'reserved'; // Teredo tunnels to arbitrary IPv4
  if ((g[0] & 0xfe00) === 0xfc00) return 'unique-local';
  if ((g[0] & 0xffc0) === 0xfe80) return 'link-local';
  if ((g[0] & 0xffc0) === 0xfec0) return 'private'; // site-local, deprecated
  if ((g[0] & 0xff00) === 0xff00) return 'multicast';
  // Only global unicast (2000::/3) is public; everything else is unassigned or special.
  if ((g[0] & 0xe000) !== 0x2000) return 'reserved';
  return 'public';
}

/** What kind of address `ip` is; only `public` may be contacted. */
export function classifyAddress(ip: string): AddressClass {
  const family = isIP(ip.replace(/%.*$/, ''));
  if (family === 4) return classifyV4(ipv4ToInt(ip)!);
  if (family === 6) {
    const groups = ipv6Groups(ip);
    return groups ? classifyV6(groups) : 'invalid';
  }
  return 'invalid';
}

/**
 * Parses the hosts allowed despite the guard (`DOTGIT_WEBHOOK_ALLOW_HOSTS`): host names as written
 * in URLs, lowercased; IPv6 literals with or without brackets.
 */
export function parseAllowHosts(list: string | undefined): string[] {
  return (list ?? '')
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter(Boolean)
    .map((h) => (isIP(h) === 6 ? `[${h}]` : h));
}

/** True when the URL's host, exactly as written (`URL.hostname`), is on the allow-list. */
export function isAllowListed(url: URL, allowHosts: readonly string[]): boolean {
  return allowHosts.includes(url.hostname.toLowerCase());
}

/** A URL a webhook may have: http(s), a host, no credentials, not too long. Throws SsrfRefusedError otherwise. */
export function parseOutboundUrl(raw: unknown): URL {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > 2048) throw new SsrfRefusedError('url must be an http(s) URL of at most 2048 characters');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new SsrfRefusedError('url is not a valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new SsrfRefusedError('url must use http or https');
  if (!url.hostname) throw new SsrfRefusedError('url has no host');
  if (url.username || url.password) throw new SsrfRefusedError('url must not contain credentials');
  return url;
}

/** Bracketless literal IP of a URL host, or undefined for a name. */
function literalIp(url: URL): string | undefined {
  const h = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return isIP(h) ? h : undefined;
}

/** Refuses a URL whose host is a literal non-public IP (names are checked when resolved). */
export function refuseLiteralPrivateIp(url: URL, allowHosts: readonly string[]): void {
  const ip = literalIp(url);
  if (!ip || isAllowListed(url, allowHosts)) return;
  const cls = classifyAddress(ip);
  if (cls !== 'public') throw new SsrfRefusedError(`${url.hostname} is a ${cls} address; only public addresses may be contacted`);
}

export type Resolver = (host: string) => Promise<{ address: string; family: number }[]>;
const systemResolver: Resolver = (host) => dnsLookup(host, { all: true, verbatim: true });

export interface VettedTarget {
  url: URL;
  address: string;
  family: 4 | 6;
}

/**
 * Resolves the URL's host once and vets every address it resolves to (one private answer among
 * public ones refuses the whole name: an attacker controls which one a client would pick).
 */
export async function vetTarget(url: URL, opts: { allowHosts: readonly string[]; resolve?: Resolver }): Promise<VettedTarget> {
  const allowed = isAllowListed(url, opts.allowHosts);
  const ip = literalIp(url);
  let addresses: { address: string; family: number }[];
  if (ip) {
    addresses = [{ address: ip, family: isIP(ip) }];
  } else {
    try {
      addresses = await (opts.resolve ?? systemResolver)(url.hostname);
    } catch (err) {
      // Resolution failures are transient as often as not: the caller may retry.
      throw new Error(`could not resolve ${url.hostname}: ${(err as Error).message}`);
    }
    if (addresses.length === 0) throw new Error(`${url.hostname} resolved to no address`);
  }
  if (!allowed) {
    for (const a of addresses) {
      const cls = classifyAddress(a.address);
      if (cls !== 'public') throw new SsrfRefusedError(`${url.hostname} resolves to ${a.address}, a ${cls} address; only public addresses may be contacted`);
    }
  }
  const chosen = addresses[0];
  return { url, address: chosen.address, family: chosen.family === 6 ? 6 : 4 };
}

/** A `lookup` that answers every query with the vetted address: the socket cannot go elsewhere. */
export function pinnedLookup(target: Pick<VettedTarget, 'address' | 'family'>): LookupFunction {
  return ((_host: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    if (options?.all) callback(null, [{ address: target.address, family: target.family }]);
    else callback(null, target.address, target.family);
  }) as LookupFunction;
}

export interface GuardedResponse {
  status: number;
  /** The first bytes of the answer (at most `maxResponseBytes`). */
  body: string;
}

/**
 * One request to a vetted target through a pinned connection. Rejects on network errors and on
 * the time limit; never follows redirects (a 3xx is just an answer).
 */
export function requestVetted(
  target: VettedTarget,
  o: { method: string; headers: Record<string, string>; body?: string | Buffer; timeoutMs: number; maxResponseBytes?: number },
): Promise<GuardedResponse> {
  const max = o.maxResponseBytes ?? 4096;
  const mod = target.url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(target.url, {
      method: o.method,
      headers: o.headers,
      lookup: pinnedLookup(target),
      // No shared keep-alive pool: a pooled socket could have been opened for another address.
      agent: false,
      timeout: o.timeoutMs,
    });
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${o.timeoutMs} ms`)), o.timeoutMs);
    req.on('timeout', () => req.destroy(new Error(`no answer within ${o.timeoutMs} ms`)));
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const done = () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
      };
      res.on('data', (d: Buffer) => {
        chunks.push(d.subarray(0, max - size));
        size += d.length;
        // Enough to show in the delivery log; the rest of a large answer is not read.
        if (size >= max) {
          done();
          res.destroy();
        }
      });
      res.on('end', done);
      res.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    req.end(o.body);
  });
}
