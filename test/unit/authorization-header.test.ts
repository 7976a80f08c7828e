import { AuthenticationError } from '../../core/errors';
import { credentialsFrom } from '../../gateway/token-auth';

// The gateway reads `Authorization` strictly (RFC 9110 §11.4: scheme, spaces, one token68):
// whatever follows the credentials is refused, never ignored (issue 10, defect 9).

const basic = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`;

test('Bearer and Basic (token as password) give the token', () => {
  expect(credentialsFrom('Bearer dg_abc-_123')).toBe('dg_abc-_123');
  expect(credentialsFrom('bearer   eyJa.eyJb.sig')).toBe('eyJa.eyJb.sig');
  expect(credentialsFrom(basic('x:dg_tok'))).toBe('dg_tok');
  expect(credentialsFrom(undefined)).toBeUndefined();
});

test.each([
  ['Bearer dg_tok junk'],
  ['Bearer dg_tok\tjunk'],
  ['Bearer dg_tok,dg_other'],
  ['Bearer'],
  ['Bearer '],
  [' Bearer dg_tok'],
  [`${basic('x:dg_tok')} junk`],
  [`${basic('x:dg_tok')}!`],
  ['Basic dg_tok=a'],
])('%j is a malformed Authorization header', (value) => {
  expect(() => credentialsFrom(value)).toThrow(AuthenticationError);
  expect(() => credentialsFrom(value)).toThrow(/malformed Authorization header/);
});

test('other schemes and Basic without a password are refused, naming why', () => {
  expect(() => credentialsFrom('Digest abc')).toThrow(/unsupported authorization scheme Digest/);
  expect(() => credentialsFrom(basic('x'))).toThrow(/token as password/);
});
