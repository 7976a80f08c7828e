import { MASK, SecretMasker } from '../../core/secret-mask';

describe('SecretMasker', () => {
  const secret = 's3cr3t-"value"/with+chars';
  const masker = new SecretMasker([secret, 'other-token-123']);

  it('masks the plain value wherever it appears', () => {
    expect(masker.mask(`token=${secret} and again ${secret}`)).toBe(`token=${MASK} and again ${MASK}`);
    expect(masker.mask('nothing secret here')).toBe('nothing secret here');
  });

  it('masks the JSON-escaped form', () => {
    const line = JSON.stringify({ token: secret });
    expect(line).not.toContain(secret); // the quotes are escaped, so plain matching alone would miss it
    expect(masker.mask(line)).not.toContain(JSON.stringify(secret).slice(1, -1));
    expect(masker.mask(line)).toContain(MASK);
  });

  it('masks base64 and base64url of the value, alone and inside longer base64 text', () => {
    const b64 = Buffer.from(secret).toString('base64');
    expect(masker.mask(`basic ${b64}`)).toBe(`basic ${MASK}`);
    expect(masker.mask(Buffer.from(secret).toString('base64url'))).toBe(MASK);
    for (const prefix of ['a', 'ab', 'abc', 'user:']) {
      for (const suffix of ['', 'x', 'xy']) {
        const embedded = Buffer.from(`${prefix}${secret}${suffix}`).toString('base64');
        const masked = masker.mask(embedded);
        expect(masked).toContain(MASK);
        // What is left cannot be decoded back to the secret.
        expect(Buffer.from(masked.replace(MASK, ''), 'base64').toString()).not.toContain(secret);
      }
    }
  });

  it('masks the URL-encoded form and each line of a multi-line value', () => {
    expect(masker.mask(`q=${encodeURIComponent(secret)}`)).toBe(`q=${MASK}`);
    const key = new SecretMasker(['-----BEGIN KEY-----\nAAAAsecretline\n-----END KEY-----']);
    expect(key.mask('AAAAsecretline')).toBe(MASK);
  });

  it('leaves very short values alone and works with no secrets', () => {
    expect(new SecretMasker(['ab']).mask('abc ab')).toBe('abc ab');
    expect(new SecretMasker([]).mask('line')).toBe('line');
  });
});
