import { InvalidActionTokenError, signActionToken, verifyActionToken } from '../../git-server/lfs/action-token';
import { signIdentity, signServiceToken, verifyIdentity, verifyServiceToken } from '../../core/internal-identity';

const SECRET = 's'.repeat(40);
const OID = 'cd'.repeat(32);
const claims = { op: 'upload' as const, tenantId: 1, repoId: 2, oid: OID, size: 10 };

test('a token verifies for exactly its operation, repository and object', async () => {
  const t = await signActionToken(SECRET, claims, 60);
  await expect(verifyActionToken(SECRET, t, { op: 'upload', tenantId: 1, repoId: 2, oid: OID })).resolves.toMatchObject({ size: 10 });
  for (const other of [{ op: 'download' as const }, { repoId: 3 }, { tenantId: 9 }, { oid: 'ef'.repeat(32) }]) {
    await expect(verifyActionToken(SECRET, t, { op: 'upload', tenantId: 1, repoId: 2, oid: OID, ...other })).rejects.toThrow(InvalidActionTokenError);
  }
});

test('a token signed with another secret, or expired, is refused', async () => {
  const want = { op: 'upload' as const, tenantId: 1, repoId: 2, oid: OID };
  await expect(verifyActionToken(SECRET, await signActionToken('t'.repeat(40), claims, 60), want)).rejects.toThrow(InvalidActionTokenError);
  await expect(verifyActionToken(SECRET, await signActionToken(SECRET, claims, -60), want)).rejects.toThrow(/exp/);
});

test('action tokens, gateway identities and service tokens never pass for one another', async () => {
  const action = await signActionToken(SECRET, claims, 60);
  await expect(verifyIdentity(SECRET, action)).rejects.toThrow();
  await expect(verifyServiceToken(SECRET, action)).rejects.toThrow();
  const want = { op: 'upload' as const, tenantId: 1, repoId: 2, oid: OID };
  await expect(verifyActionToken(SECRET, await signIdentity(SECRET, null, 'r'), want)).rejects.toThrow(InvalidActionTokenError);
  await expect(verifyActionToken(SECRET, await signServiceToken(SECRET, 'git-hook', { ...claims }), want)).rejects.toThrow(InvalidActionTokenError);
});
