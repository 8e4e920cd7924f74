-- Instances (the seed's openclaw_instances) and the credit ledger.
-- Timestamps are integer milliseconds since the Unix epoch, UTC.

CREATE TABLE openclaw_instances (
    id                        TEXT PRIMARY KEY NOT NULL,
    user_id                   TEXT NOT NULL,
    status                    TEXT NOT NULL
        CHECK (status IN ('provisioning', 'ready', 'stopped', 'error', 'deleted')),
    status_reason             TEXT,
    runtime_url               TEXT,
    runtime_name              TEXT,
    provisioner               TEXT,
    instance_type             TEXT,
    cf_account_id             TEXT,
    cf_worker_name            TEXT,
    cf_worker_id              TEXT,
    cf_container_app_id       TEXT,
    cf_container_app_name     TEXT,
    r2_bucket_name            TEXT,
    service_token_encrypted   BYTEA,
    service_token_iv          BYTEA,
    service_token_alg         TEXT,
    service_token_key_id      TEXT,
    gateway_token_encrypted   BYTEA,
    gateway_token_iv          BYTEA,
    gateway_token_alg         TEXT,
    gateway_token_key_id      TEXT,
    provider_keys_encrypted   BYTEA,
    provider_keys_iv          BYTEA,
    provider_keys_alg         TEXT,
    provider_keys_key_id      TEXT,
    created_at                BIGINT NOT NULL,
    updated_at                BIGINT NOT NULL,
    status_changed_at         BIGINT NOT NULL,
    last_ready_at             BIGINT
);

-- Exactly one live instance per user, enforced here and not by convention.
CREATE UNIQUE INDEX openclaw_instances_one_live_per_user
    ON openclaw_instances (user_id) WHERE status <> 'deleted';
CREATE UNIQUE INDEX openclaw_instances_live_runtime_name
    ON openclaw_instances (runtime_name) WHERE status <> 'deleted' AND runtime_name IS NOT NULL;
CREATE INDEX openclaw_instances_by_user_id ON openclaw_instances (user_id, created_at);
CREATE INDEX openclaw_instances_by_status ON openclaw_instances (status, status_changed_at);

CREATE TABLE credit_ledger (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id             TEXT NOT NULL,
    kind                TEXT NOT NULL CHECK (kind IN ('grant', 'burn', 'reversal')),
    source              TEXT NOT NULL,
    amount_micro_usd    BIGINT NOT NULL,
    balance_after_micro_usd BIGINT NOT NULL,
    idempotency_key     TEXT NOT NULL UNIQUE,
    request_hash        TEXT NOT NULL,
    reverses_entry_id   BIGINT UNIQUE REFERENCES credit_ledger (id),
    meta                TEXT NOT NULL DEFAULT '{}',
    created_at          BIGINT NOT NULL
);
CREATE INDEX credit_ledger_by_user_id ON credit_ledger (user_id, id);
CREATE INDEX credit_ledger_by_user_kind_created ON credit_ledger (user_id, kind, created_at);

CREATE TABLE credit_balances (
    user_id             TEXT PRIMARY KEY NOT NULL,
    balance_micro_usd   BIGINT NOT NULL,
    entry_count         BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
