-- Where usage metering has got to, per instance and dimension (for example
-- `model:2026-11-24` for the model spend the gateway reported for that day).
-- Advanced in the same transaction as the burn it causes.
CREATE TABLE metering_cursors (
    instance_id     TEXT NOT NULL,
    dimension       TEXT NOT NULL,
    value_micro_usd BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (instance_id, dimension)
);
