-- Token derivation (docs/decisions/0009-token-derivation.md): every token made with a token records
-- that token, so revoking a token revokes everything derived from it. NULL: made by the bootstrap,
-- a client certificate or an outside issuer's JWT (no token of ours behind it), or before 0011.
ALTER TABLE tokens ADD COLUMN parent_token_id bigint REFERENCES tokens (id);
CREATE INDEX tokens_parent_token_id ON tokens (parent_token_id) WHERE parent_token_id IS NOT NULL;
