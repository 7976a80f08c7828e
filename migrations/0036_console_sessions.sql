-- phase: expand
-- The web console's sign-in (ADR 0032). A session is an opaque random id in an HttpOnly cookie;
-- only its SHA-256 is stored, with the API token it stands for, so revoking or expiring that token
-- ends its sessions too (the gateway joins through tokens on every request). `csrf` is the
-- session's anti-forgery token, which cookie-authenticated writes must send back in a header.
CREATE TABLE console_sessions (
  id_hash     bytea PRIMARY KEY,
  token_id    bigint NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
  csrf        text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires_at ON console_sessions (expires_at);

-- One-time sign-in links (`npm start` prints one for the admin): the code's SHA-256, the token a
-- session made from it stands for; deleted when used, useless after expires_at.
CREATE TABLE console_signin_codes (
  code_hash   bytea PRIMARY KEY,
  token_id    bigint NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
  expires_at  timestamptz NOT NULL
);
