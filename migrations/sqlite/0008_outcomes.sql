-- Effectiveness (issue 10): what each rule's and campaign step's sends achieved.

-- The A/B variant of the send action a job carries (NULL: the action had no variants).
ALTER TABLE outbox ADD COLUMN variant TEXT;

-- What happened after a send, at most once per job and kind: delivered | seen (Zalo receipts
-- by message id, a person opening an email) | replied (the user wrote within 24 h; the latest
-- send gets it) | came_back (the user wrote within 7 days) | clicked (a tracked link).
-- Erasing a contact deletes its jobs, and with them these rows.
CREATE TABLE send_outcomes (
    job_id INTEGER NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    kind   TEXT    NOT NULL,
    at     INTEGER NOT NULL,
    PRIMARY KEY (job_id, kind)
);

-- How often each rule fired, per hour (bounded: rules x hours; no contact in it).
CREATE TABLE rule_fire_hours (
    rule_id TEXT    NOT NULL,
    hour    INTEGER NOT NULL, -- fired_at / 3600000
    fires   INTEGER NOT NULL,
    PRIMARY KEY (rule_id, hour)
);

-- Reports read a rule's jobs by creation time; replies find a user's latest sends.
CREATE INDEX outbox_rule_created ON outbox (rule_id, created_at) WHERE rule_id IS NOT NULL;
CREATE INDEX outbox_user_sent ON outbox (user_id, sent_at) WHERE status = 'sent' AND rule_id IS NOT NULL;
