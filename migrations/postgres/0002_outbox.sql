-- Every send (to a customer or to staff) is a job here, written in the same transaction as the
-- fact that caused it. `run_at` serves retries, delays and scheduled sends alike.
CREATE TABLE outbox (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel      TEXT    NOT NULL,            -- zalo | sms | email | zns | chat | task
    user_id      TEXT    NOT NULL DEFAULT '', -- sends to one user stay in order ('' = no lane)
    payload      TEXT    NOT NULL,            -- channels::Payload as JSON
    priority     INTEGER NOT NULL DEFAULT 0,  -- VIP first
    first_due    BIGINT NOT NULL,            -- when it was first due (keeps per-user order)
    run_at       BIGINT NOT NULL,            -- next attempt
    status       TEXT    NOT NULL DEFAULT 'pending', -- pending | sending | sent | dead
    attempts     INTEGER NOT NULL DEFAULT 0,
    lease_owner  TEXT,
    lease_until  BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT,
    last_code    BIGINT,
    provider_id  TEXT,
    rule_id      TEXT,
    source       TEXT    NOT NULL DEFAULT '',
    dedupe_key   TEXT UNIQUE,                 -- idempotency of scheduler decisions
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    sent_at      BIGINT
);
CREATE INDEX outbox_due ON outbox (run_at, priority) WHERE status = 'pending';
CREATE INDEX outbox_inflight ON outbox (lease_until) WHERE status = 'sending';
CREATE INDEX outbox_lane ON outbox (user_id, first_due, id) WHERE status IN ('pending', 'sending');
CREATE INDEX outbox_status ON outbox (status, id);

-- Named leases: one holder at a time across instances (the Zalo sender, token refresh, the tick).
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    owner       TEXT    NOT NULL,
    until       BIGINT NOT NULL
);

-- The OA's token pair. Refresh tokens are single-use: the newest pair lives here and wins over
-- the environment's.
CREATE TABLE oa_tokens (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    access_token  TEXT    NOT NULL,
    refresh_token TEXT    NOT NULL,
    expires_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
