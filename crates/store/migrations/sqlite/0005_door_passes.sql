-- The passes of an instance's door, in their own table: the console's
-- one-time passes ("Open OpenClaw", kind 'handoff') and the door cookies
-- they become (kind 'door'), each bound to one account and one instance
-- host (its runtime name). Only a SHA-256 digest of each is kept.
--
-- They used to be console_sessions rows whose csrf_token field was
-- 'handoff:<runtime_name>' or 'door:<runtime_name>'; those rows move here,
-- so a browser's door cookie outlives the upgrade.

CREATE TABLE door_passes (
    digest        TEXT PRIMARY KEY NOT NULL,
    user_id       TEXT NOT NULL REFERENCES console_users (id),
    kind          TEXT NOT NULL CHECK (kind IN ('handoff', 'door')),
    runtime_name  TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX door_passes_by_user ON door_passes (user_id, kind);
CREATE INDEX door_passes_by_expiry ON door_passes (expires_at);

INSERT INTO door_passes (digest, user_id, kind, runtime_name, created_at, expires_at)
SELECT digest, user_id, 'handoff', substr(csrf_token, 9), created_at, expires_at
FROM console_sessions WHERE csrf_token LIKE 'handoff:%';

INSERT INTO door_passes (digest, user_id, kind, runtime_name, created_at, expires_at)
SELECT digest, user_id, 'door', substr(csrf_token, 6), created_at, expires_at
FROM console_sessions WHERE csrf_token LIKE 'door:%';

DELETE FROM console_sessions WHERE csrf_token LIKE 'handoff:%' OR csrf_token LIKE 'door:%';
