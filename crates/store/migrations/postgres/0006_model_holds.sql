-- Two-phase model spend (TigerBeetle's pending transfers): before a model
-- request is forwarded, its largest possible cost is reserved as an open
-- hold; when the upstream's usage arrives the hold is settled (one burn entry
-- of min(cost, hold), the rest released) or released (nothing billed).
--
-- A user's open holds are summed in credit_balances.held_micro_usd, moved in
-- the same transaction as the hold, so a reserve (and a burn with a floor)
-- decides on balance - held under the balance row's lock, like the floor.
-- verify checks held_micro_usd against the open holds.

ALTER TABLE credit_balances ADD COLUMN held_micro_usd BIGINT NOT NULL DEFAULT 0;

CREATE TABLE model_holds (
    id                TEXT PRIMARY KEY NOT NULL,
    user_id           TEXT NOT NULL,
    instance_id       TEXT NOT NULL,
    model             TEXT NOT NULL,
    amount_micro_usd  BIGINT NOT NULL CHECK (amount_micro_usd > 0),
    request_id        TEXT NOT NULL UNIQUE,
    state             TEXT NOT NULL CHECK (state IN ('open', 'settled', 'released')),
    -- The burn that settled it; set exactly when state = 'settled'.
    entry_id          BIGINT UNIQUE REFERENCES credit_ledger (id),
    created_at        BIGINT NOT NULL,
    closed_at         BIGINT,
    CHECK ((state = 'settled') = (entry_id IS NOT NULL)),
    CHECK ((state = 'open') = (closed_at IS NULL))
);
CREATE INDEX model_holds_open_by_age ON model_holds (created_at) WHERE state = 'open';
CREATE INDEX model_holds_by_user ON model_holds (user_id, state);
