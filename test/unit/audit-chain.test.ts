import { createHash } from 'node:crypto';
import { auditHash, auditShardOf, type AuditLink } from '../../core/stores/audit-store';
import { SHARD_COUNT, shardOf } from '../../core/shards';

// The documented forms (docs/decisions audit chain, core/shards.ts), pinned: a change to either
// would break every stored chain or move every tenant, so these vectors must never change.

const LINK: AuditLink = {
  shard: 3,
  seq: 2,
  prev: 'a'.repeat(64),
  tenantId: 1,
  actor: 'alice',
  action: 'token.create',
  target: 'bob',
  detail: { scopes: ['read'], b: 1, a: 'é' },
  requestId: 'req-1',
  at: '2026-12-04T22:00:00.123Z',
};

// RFC 8785: members sorted by UTF-16 code units, no whitespace, strings as JSON.stringify writes them.
const CANONICAL =
  '{"action":"token.create","actor":"alice","at":"2026-12-04T22:00:00.123Z","detail":{"a":"é","b":1,"scopes":["read"]},' +
  `"prev":"${'a'.repeat(64)}","requestId":"req-1","seq":2,"shard":3,"target":"bob","tenantId":1,"v":1}`;

test('a link hashes as SHA-256 over the canonical JSON of its content, version and predecessor', () => {
  const expected = createHash('sha256').update(CANONICAL, 'utf8').digest('hex');
  expect(expected).toBe('4158c23273abc826fa4c4c2564ea306f84c8c99226cd18f35345d6fa3283353f');
  expect(auditHash(LINK)).toBe(expected);
  // Member order does not matter; every covered field does.
  expect(auditHash({ ...LINK, detail: { a: 'é', scopes: ['read'], b: 1 } })).toBe(expected);
  for (const change of [{ prev: 'b'.repeat(64) }, { seq: 3 }, { shard: 4 }, { tenantId: 2 }, { actor: 'mallory' }, { target: 'eve' }, { requestId: null }, { at: '2026-12-04T22:00:00.124Z' }, { detail: { ...LINK.detail, b: 2 } }]) {
    expect(auditHash({ ...LINK, ...change })).not.toBe(expected);
  }
});

test('shardOf: first 4 bytes of SHA-256 of the decimal id, big-endian, mod 8; fixed vectors', () => {
  expect([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 100, 12345].map((t) => shardOf(t))).toEqual([3, 2, 5, 7, 5, 1, 3, 2, 7, 5, 6, 1, 0, 2]);
  expect(shardOf('12345')).toBe(2);
  expect(shardOf(12345n)).toBe(2);
  expect(() => shardOf(1.5)).toThrow('not a tenant id');
  expect(() => shardOf('007')).toThrow('not a tenant id');
  // Platform events without a tenant chain in shard 0.
  expect(auditShardOf(null)).toBe(0);
  expect(auditShardOf(undefined)).toBe(0);
});

test('sequential tenant ids spread over the 8 shards', () => {
  const counts = Array(SHARD_COUNT).fill(0);
  for (let id = 1; id <= 8000; id++) counts[shardOf(id)] += 1;
  for (const n of counts) expect(n).toBeGreaterThan(900);
  for (const n of counts) expect(n).toBeLessThan(1100);
});
