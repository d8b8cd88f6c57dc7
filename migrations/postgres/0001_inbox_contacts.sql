-- Verified webhook deliveries, in arrival order. `user_id` is the per-user lane ('' = none).
CREATE TABLE inbox (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedupe_key   TEXT    NOT NULL UNIQUE,
    event_name   TEXT    NOT NULL,
    user_id      TEXT    NOT NULL DEFAULT '',
    priority     INTEGER NOT NULL DEFAULT 0,
    body         TEXT    NOT NULL,
    event_ts     BIGINT,
    received_at  BIGINT NOT NULL,
    status       TEXT    NOT NULL DEFAULT 'pending', -- pending | done | failed
    lease_owner  TEXT,
    lease_until  BIGINT NOT NULL DEFAULT 0,
    attempts     INTEGER NOT NULL DEFAULT 0,
    processed_at BIGINT,
    error        TEXT
);
CREATE INDEX inbox_pending ON inbox (priority DESC, id) WHERE status = 'pending';
CREATE INDEX inbox_lane ON inbox (user_id, id) WHERE status = 'pending';

-- One row per person the OA knows (a Zalo user id, or a generated key for form-only contacts).
CREATE TABLE contacts (
    user_id          TEXT PRIMARY KEY,
    display_name     TEXT,
    phone            TEXT,
    email            TEXT,
    follows          BOOLEAN, -- NULL = unknown
    first_seen       BIGINT NOT NULL,
    last_interaction BIGINT,
    interaction_count BIGINT NOT NULL DEFAULT 0, -- events the user caused
    followed_at      BIGINT,
    unfollowed_at    BIGINT,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX contacts_last_interaction ON contacts (last_interaction);
CREATE INDEX contacts_phone ON contacts (phone);

CREATE TABLE contact_tags (
    user_id  TEXT    NOT NULL,
    tag      TEXT    NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, tag)
);
CREATE INDEX contact_tags_tag ON contact_tags (tag, user_id);

CREATE TABLE contact_fields (
    user_id    TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, name)
);
