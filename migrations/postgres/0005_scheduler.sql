-- The scheduler (issue 5): campaign memberships, the marks that make each tick decision happen
-- once, and the watermarks of the scans.

-- One row per contact and campaign: which step comes next and when (seed 000).
CREATE TABLE campaign_members (
    campaign    TEXT    NOT NULL,
    contact_id  TEXT    NOT NULL,
    entered_at  BIGINT  NOT NULL,            -- day 0 of the steps
    step        BIGINT  NOT NULL DEFAULT 0,  -- index of the next step to run
    next_at     BIGINT,                     -- when it is due (NULL once done or left)
    status      TEXT    NOT NULL DEFAULT 'active', -- active | done | left
    entries     BIGINT  NOT NULL DEFAULT 1,  -- registrations counted (II.2 repeats)
    left_reason TEXT,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (campaign, contact_id)
);
CREATE INDEX campaign_members_due ON campaign_members (next_at) WHERE status = 'active';
CREATE INDEX campaign_members_contact ON campaign_members (contact_id);

-- Decisions already taken (a campaign step of one membership, a birthday of one year, a
-- "not opened" follow-up of one email): written in the transaction that applies them.
CREATE TABLE scheduler_marks (
    key TEXT PRIMARY KEY,
    at  BIGINT  NOT NULL
);

-- Watermarks: the last schedule occurrence handled per rule, the last scan of each kind.
CREATE TABLE scheduler_state (
    name       TEXT PRIMARY KEY,
    value      BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL
);

-- Scans: fields changed since the last tick (field_changed), special days by field name,
-- list joins (list_joined), sent emails (email_not_opened).
CREATE INDEX contact_fields_updated ON contact_fields (name, updated_at);
CREATE INDEX list_members_added ON list_members (list, added_at);
CREATE INDEX outbox_email_sent ON outbox (sent_at) WHERE channel = 'email' AND status = 'sent';
CREATE INDEX contacts_follows ON contacts (follows, user_id);
-- Re-activation scans read a range of last interactions and nothing else of the rows.
CREATE INDEX contacts_inactivity ON contacts (last_interaction) INCLUDE (follows, user_id);
