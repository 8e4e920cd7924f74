-- The instance's model token: sealed like the other secrets (for the
-- runtime, at each start) and its SHA-256 digest (hex) for the model
-- proxy's lookup of who is calling. Rotated when the instance is
-- provisioned again; cleared with the other secrets on delete.

ALTER TABLE openclaw_instances ADD COLUMN model_token_encrypted BYTEA;
ALTER TABLE openclaw_instances ADD COLUMN model_token_iv BYTEA;
ALTER TABLE openclaw_instances ADD COLUMN model_token_alg TEXT;
ALTER TABLE openclaw_instances ADD COLUMN model_token_key_id TEXT;
ALTER TABLE openclaw_instances ADD COLUMN model_token_digest TEXT;

CREATE UNIQUE INDEX openclaw_instances_model_token_digest
    ON openclaw_instances (model_token_digest) WHERE model_token_digest IS NOT NULL;
