-- Handoffs to people (VIP care): one unresolved handoff per contact at a time; the messages
-- attached to it; the breaches of its response deadline (once per level).
CREATE TABLE handoffs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id          TEXT    NOT NULL,
    contact_name     TEXT,
    status           TEXT    NOT NULL DEFAULT 'open', -- open | claimed | resolved
    priority         INTEGER NOT NULL DEFAULT 0,      -- 0 normal, 1 high, 2 urgent
    team             TEXT,
    advisor          TEXT,
    rule_id          TEXT,
    note             TEXT,
    opened_at        INTEGER NOT NULL,
    deadline_at      INTEGER NOT NULL,
    first_text       TEXT,                            -- the message that opened it
    messages         INTEGER NOT NULL DEFAULT 0,      -- customer messages attached
    last_message_at  INTEGER,
    claimed_by       TEXT,
    claimed_at       INTEGER,
    responded_by     TEXT,                            -- first human response: agent or OA admin id
    responded_at     INTEGER,
    response_via     TEXT,                            -- oa | claim | resolve
    resolved_by      TEXT,
    resolved_at      INTEGER,
    escalation_level INTEGER NOT NULL DEFAULT 0,
    source           TEXT    NOT NULL DEFAULT '',
    updated_at       INTEGER NOT NULL
);
CREATE UNIQUE INDEX handoffs_one_open ON handoffs (user_id) WHERE status <> 'resolved';
CREATE INDEX handoffs_unanswered ON handoffs (deadline_at)
    WHERE status <> 'resolved' AND responded_at IS NULL;
CREATE INDEX handoffs_status ON handoffs (status, deadline_at);
CREATE INDEX handoffs_opened ON handoffs (opened_at);

CREATE TABLE handoff_messages (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    handoff_id INTEGER NOT NULL REFERENCES handoffs (id),
    direction  TEXT    NOT NULL, -- in (customer) | out (agent in the OA console)
    msg_id     TEXT,
    text       TEXT,
    admin_id   TEXT,
    at         INTEGER NOT NULL
);
CREATE INDEX handoff_messages_handoff ON handoff_messages (handoff_id, id);

CREATE TABLE handoff_breaches (
    handoff_id  INTEGER NOT NULL REFERENCES handoffs (id),
    level       INTEGER NOT NULL,
    due_at      INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    channel     TEXT,
    PRIMARY KEY (handoff_id, level)
);

-- An OA echo is ours when its msg id is the message_id Zalo gave an outbox job.
CREATE INDEX outbox_provider ON outbox (provider_id) WHERE provider_id IS NOT NULL;
