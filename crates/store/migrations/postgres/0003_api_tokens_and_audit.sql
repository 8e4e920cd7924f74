-- Per-user API tokens (only a SHA-256 digest of each token is kept) and the
-- audit log of secret reads and writes through the control endpoints.

CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY NOT NULL,
    user_id       TEXT NOT NULL,
    name          TEXT NOT NULL,
    token_digest  TEXT NOT NULL UNIQUE,
    hint          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT,
    revoked_at    BIGINT
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_id, created_at);

CREATE TABLE audit_log (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            BIGINT NOT NULL,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    instance_id   TEXT,
    subject       TEXT,
    request_id    TEXT
);
CREATE INDEX audit_log_by_user ON audit_log (user_id, id);
