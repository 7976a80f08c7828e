-- Keys of our own JWT issuer (POST /oauth/token). The newest active key signs; retired keys stay
-- published in the JWKS until tokens signed with them have expired (kid overlap during rotation).
-- Private keys are stored encrypted (AES-256-GCM with a key derived from the internal secret).
CREATE TABLE signing_keys (
  kid          text PRIMARY KEY,
  alg          text NOT NULL,
  public_jwk   jsonb NOT NULL,
  private_enc  text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  retired_at   timestamptz
);
