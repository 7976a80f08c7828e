import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { classifyAddress, isAllowListed, parseAllowHosts, parseOutboundUrl, refuseLiteralPrivateIp, requestVetted, SsrfRefusedError, vetTarget, type Resolver } from '../../core/ssrf-guard';

describe('classifyAddress', () => {
  test.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.1.2', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'cgnat'],
    ['100.127.255.254', 'cgnat'],
    ['169.254.169.254', 'metadata'],
    ['169.254.1.1', 'link-local'],
    ['0.0.0.0', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['192.0.2.10', 'documentation'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['0:0:0:0:0:0:0:1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:169.254.169.254', 'metadata'],
    ['::ffff:10.0.0.1', 'private'],
    ['64:ff9b::a9fe:a9fe', 'metadata'],
    ['2002:a00:1::1', 'private'], // 6to4 of 10.0.0.1
    ['fc00::1', 'unique-local'],
    ['fd12:3456:789a::1', 'unique-local'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['ff02::1', 'multicast'],
    ['2001:db8::1', 'documentation'],
    ['::127.0.0.1', 'reserved'],
    ['not-an-ip', 'invalid'],
  ])('%s is %s', (ip, cls) => {
    expect(classifyAddress(ip)).toBe(cls);
  });

  test.each(['93.184.216.34', '8.8.8.8', '172.32.0.1', '100.128.0.1', '169.255.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8'])('%s is public', (ip) => {
    expect(classifyAddress(ip)).toBe('public');
  });
});

describe('allow-list', () => {
  test('hosts are matched as written in the URL, case-insensitively; IPv6 literals with brackets', () => {
    const allow = parseAllowHosts(' 127.0.0.1 , Hooks.Internal ,::1,');
    expect(allow).toEqual(['127.0.0.1', 'hooks.internal', '[::1]']);
    expect(isAllowListed(new URL('http://127.0.0.1:9/x'), allow)).toBe(true);
    expect(isAllowListed(new URL('http://HOOKS.internal/'), allow)).toBe(true);
    expect(isAllowListed(new URL('http://[::1]:8080/'), allow)).toBe(true);
    // A name that resolves to an allowed address is not the allowed host.
    expect(isAllowListed(new URL('http://localhost/'), allow)).toBe(false);
    expect(isAllowListed(new URL('http://127.0.0.2/'), allow)).toBe(false);
    expect(parseAllowHosts(undefined)).toEqual([]);
  });

  test('literal private IPs are refused unless allow-listed', () => {
    expect(() => refuseLiteralPrivateIp(new URL('http://169.254.169.254/latest/meta-data'), [])).toThrow(/metadata/);
    expect(() => refuseLiteralPrivateIp(new URL('http://[::ffff:10.0.0.1]/'), [])).toThrow(SsrfRefusedError);
    expect(() => refuseLiteralPrivateIp(new URL('http://127.0.0.1/'), ['127.0.0.1'])).not.toThrow();
    expect(() => refuseLiteralPrivateIp(new URL('http://93.184.216.34/'), [])).not.toThrow();
    // Names are checked after resolution, not here.
    expect(() => refuseLiteralPrivateIp(new URL('http://localhost/'), [])).not.toThrow();
  });
});

describe('parseOutboundUrl', () => {
  test.each([
    ['ftp://example.com/', /http or https/],
    ['file:///etc/passwd', /http or https/],
    ['http://user:pw@example.com/', /credentials/],
    ['not a url', /not a valid URL/],
    ['', /at most 2048/],
    [`https://example.com/${'a'.repeat(2100)}`, /at most 2048/],
  ])('%s is refused', (raw, msg) => {
    expect(() => parseOutboundUrl(raw)).toThrow(msg);
  });
  test('http and https URLs pass', () => {
    expect(parseOutboundUrl('https://hooks.example.com/x?y=1').hostname).toBe('hooks.example.com');
  });
});

describe('vetTarget', () => {
  const fixed = (...answers: string[][]): Resolver & { calls: number } => {
    const r = Object.assign(
      async () => {
        const a = answers[Math.min(r.calls, answers.length - 1)];
        r.calls++;
        return a.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
      },
      { calls: 0 },
    );
    return r;
  };

  test('a name that resolves to a private address is refused after resolution', async () => {
    await expect(vetTarget(new URL('http://internal.example/'), { allowHosts: [], resolve: fixed(['10.0.0.5']) })).rejects.toThrow(/10\.0\.0\.5, a private address/);
    await expect(vetTarget(new URL('http://meta.example/'), { allowHosts: [], resolve: fixed(['169.254.169.254']) })).rejects.toThrow(SsrfRefusedError);
  });

  test('one private address among public ones refuses the name', async () => {
    await expect(vetTarget(new URL('http://mixed.example/'), { allowHosts: [], resolve: fixed(['93.184.216.34', '::1']) })).rejects.toThrow(/::1, a loopback/);
  });

  test('localhost is refused by resolution even when 127.0.0.1 is allow-listed', async () => {
    await expect(vetTarget(new URL('http://localhost:1/'), { allowHosts: ['127.0.0.1'] })).rejects.toThrow(/loopback/);
  });

  test('a public answer is pinned: the name is resolved once', async () => {
    const resolve = fixed(['93.184.216.34'], ['127.0.0.1']);
    const t = await vetTarget(new URL('https://rebind.example/'), { allowHosts: [], resolve });
    expect(t).toMatchObject({ address: '93.184.216.34', family: 4 });
    expect(resolve.calls).toBe(1);
  });

  test('the connection goes to the vetted address, not to a later DNS answer (rebinding)', async () => {
    const seen: string[] = [];
    const server = http.createServer((req, res) => {
      seen.push(`${req.headers.host} ${req.url}`);
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      // First answer 127.0.0.1 (allowed here only through the allow-list), every later answer elsewhere.
      const resolve = fixed(['127.0.0.1'], ['192.0.2.1']);
      const target = await vetTarget(new URL(`http://rebind.test:${port}/hook`), { allowHosts: ['rebind.test'], resolve });
      const res = await requestVetted(target, { method: 'POST', headers: {}, body: '{}', timeoutMs: 5000 });
      expect(res).toEqual({ status: 200, body: 'ok' });
      expect(seen).toEqual([`rebind.test:${port} /hook`]);
      expect(resolve.calls).toBe(1);
    } finally {
      server.close();
    }
  });
});
