import { createHmac, createSecretKey } from 'node:crypto';
import { SignJWT, jwtVerify } from 'jose';
import { signIdentity, verifyIdentity, InvalidIdentityError } from '../../core/internal-identity';
import type { Principal } from '../../core/principal';

// The gateway's signed identity is a compact HS256 JWT made with node:crypto (it is on every
// request's path); it must stay a standard JWT and refuse everything jose would refuse.

const SECRET = 'k'.repeat(40);
const key = createSecretKey(Buffer.from(SECRET, 'utf8'));
const alice: Principal = { userId: 1, username: 'alice', tenantId: 2, tenantName: 'acme', role: 'admin', platformAdmin: false, scopes: ['read'], tokenId: 3 };
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
/** A correctly signed token with any header (jose refuses to make some of them). */
const hs256 = (header: unknown, claims: unknown) => `${b64(header)}.${b64(claims)}.${createHmac('sha256', key).update(`${b64(header)}.${b64(claims)}`).digest('base64url')}`;

function joseIdentity(claims: Record<string, unknown>, header: Record<string, unknown> = {}, opts: { iss?: string; aud?: string; exp?: number | string } = {}) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'dotgit-identity+jwt', ...header })
    .setIssuer(opts.iss ?? 'dotgit-gateway')
    .setAudience(opts.aud ?? 'dotgit-internal')
    .setIssuedAt()
    .setExpirationTime(opts.exp ?? '60s')
    .sign(key);
}

test('round trip, and the format is a standard JWT both ways', async () => {
  const token = await signIdentity(SECRET, alice, 'req-12345678');
  await expect(verifyIdentity(SECRET, token)).resolves.toEqual({ principal: alice, requestId: 'req-12345678' });
  const { payload, protectedHeader } = await jwtVerify(token, key, { issuer: 'dotgit-gateway', audience: 'dotgit-internal', algorithms: ['HS256'], typ: 'dotgit-identity+jwt' });
  expect(protectedHeader).toEqual({ alg: 'HS256', typ: 'dotgit-identity+jwt' });
  expect(payload.principal).toEqual(alice);
  await expect(verifyIdentity(SECRET, await joseIdentity({ principal: null, rid: 'r-1' }))).resolves.toEqual({ principal: null, requestId: 'r-1' });
});

test('forgeries and stale tokens are refused', async () => {
  const token = await signIdentity(SECRET, alice, 'req-12345678');
  const [h, p, s] = token.split('.');
  const bad = [
    undefined,
    '',
    'garbage',
    `${h}.${p}`,
    `${h}.${p}.${s}.x`,
    `${h}.${p}.`,
    // another key
    await signIdentity('z'.repeat(40), alice, 'req-12345678'),
    // payload changed, signature kept
    `${h}.${b64({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), principal: { ...alice, platformAdmin: true } })}.${s}`,
    // alg none, and a header that is not ours
    `${b64({ alg: 'none', typ: 'dotgit-identity+jwt' })}.${p}.`,
    await joseIdentity({ principal: alice, rid: 'r' }, { typ: 'JWT' }),
    hs256({ alg: 'HS256', typ: 'dotgit-identity+jwt', crit: ['x'], x: 1 }, JSON.parse(Buffer.from(p, 'base64url').toString())),
    // wrong issuer, audience, expired
    await joseIdentity({ principal: alice, rid: 'r' }, {}, { iss: 'someone' }),
    await joseIdentity({ principal: alice, rid: 'r' }, {}, { aud: 'dotgit-service' }),
    await joseIdentity({ principal: alice, rid: 'r' }, {}, { exp: Math.floor(Date.now() / 1000) - 30 }),
  ];
  for (const t of bad) await expect(verifyIdentity(SECRET, t)).rejects.toThrow(InvalidIdentityError);
  // Not yet valid.
  const future = await new SignJWT({ principal: alice, rid: 'r' }).setProtectedHeader({ alg: 'HS256', typ: 'dotgit-identity+jwt' }).setIssuer('dotgit-gateway').setAudience('dotgit-internal').setNotBefore('1h').setExpirationTime('2h').sign(key);
  await expect(verifyIdentity(SECRET, future)).rejects.toThrow(/nbf/);
});
