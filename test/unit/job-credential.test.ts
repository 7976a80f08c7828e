import { AuthenticationError, NotAllowedError } from '../../core/errors';
import { signServiceToken } from '../../core/internal-identity';
import { mintJobCredential, verifyJobCredential } from '../../core/job-credential';

const secret = 's'.repeat(48);
const source = { repo: 'acme/app', commit: 'a'.repeat(40) };

test('a credential verifies for its own repository and commit', async () => {
  await expect(verifyJobCredential(secret, await mintJobCredential(secret, source), source)).resolves.toEqual(source);
});

test('another repository or commit is NotAllowed, naming the mismatch', async () => {
  const token = await mintJobCredential(secret, source);
  const repo = verifyJobCredential(secret, token, { ...source, repo: 'acme/other' });
  await expect(repo).rejects.toBeInstanceOf(NotAllowedError);
  await expect(repo).rejects.toThrow('job credential is for acme/app, not acme/other');
  await expect(verifyJobCredential(secret, token, { ...source, commit: 'b'.repeat(40) })).rejects.toThrow(`is for commit ${source.commit}, not ${'b'.repeat(40)}`);
});

test('missing, expired, forged or foreign tokens are AuthenticationErrors', async () => {
  await expect(verifyJobCredential(secret, undefined, source)).rejects.toBeInstanceOf(AuthenticationError);
  await expect(verifyJobCredential(secret, await mintJobCredential(secret, source, -60), source)).rejects.toThrow(/"exp" claim/);
  await expect(verifyJobCredential(secret, await mintJobCredential('t'.repeat(48), source), source)).rejects.toBeInstanceOf(AuthenticationError);
  // Same internal secret, another kind of token: the job key is derived, so it never verifies.
  await expect(verifyJobCredential(secret, await signServiceToken(secret, 'api', source), source)).rejects.toBeInstanceOf(AuthenticationError);
});
