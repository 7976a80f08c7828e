import { lfsObjectKey, objectProblem, parseBatchRequest } from '../../git-server/lfs/batch';
import { LfsValidationError } from '../../git-server/lfs/errors';
import { ConflictError } from '../../core/errors';

const OID = 'ab'.repeat(32);
const MAX = 1000;

test('objectProblem accepts a SHA-256 oid and a size within the limit', () => {
  expect(objectProblem(OID, 0, MAX)).toBeUndefined();
  expect(objectProblem(OID, MAX, MAX)).toBeUndefined();
});

test.each([
  ['uppercase oid', OID.toUpperCase(), 1],
  ['short oid', OID.slice(1), 1],
  ['path in oid', `../${OID.slice(3)}`, 1],
  ['oid not a string', 42, 1],
  ['negative size', OID, -1],
  ['fractional size', OID, 1.5],
  ['size as string', OID, '10'],
  ['size over the limit', OID, MAX + 1],
])('objectProblem rejects %s', (_name, oid, size) => {
  expect(objectProblem(oid, size, MAX)).toEqual(expect.any(String));
});

test('a valid batch request parses; bad objects are marked, not fatal', () => {
  const r = parseBatchRequest({ operation: 'upload', transfers: ['lfs-standalone-file', 'basic'], objects: [{ oid: OID, size: 3 }, { oid: 'x', size: 3 }, null] }, MAX);
  expect(r.operation).toBe('upload');
  expect(r.objects[0]).toEqual({ oid: OID, size: 3 });
  expect(r.objects[1].problem).toMatch(/oid/);
  expect(r.objects[2]).toMatchObject({ oid: '', size: -1, problem: expect.any(String) });
});

test.each([
  ['not an object', 'download'],
  ['an array', []],
  ['unknown operation', { operation: 'delete', objects: [] }],
  ['no objects', { operation: 'download' }],
  ['no basic transfer', { operation: 'download', transfers: ['tus'], objects: [] }],
  ['too many objects', { operation: 'download', objects: new Array(1001).fill({ oid: OID, size: 1 }) }],
])('a batch request that is %s is a 422', (_name, body) => {
  expect(() => parseBatchRequest(body, MAX)).toThrow(LfsValidationError);
});

test('an unknown hash algorithm is a 409, as the spec asks', () => {
  expect(() => parseBatchRequest({ operation: 'download', hash_algo: 'sha512', objects: [] }, MAX)).toThrow(ConflictError);
});

test('object keys fan out by oid prefix and refuse anything but an oid', () => {
  expect(lfsObjectKey('acme', 'web', OID)).toBe(`lfs/acme/web/ab/ab/${OID}`);
  expect(() => lfsObjectKey('acme', 'web', '../../x')).toThrow(LfsValidationError);
});
