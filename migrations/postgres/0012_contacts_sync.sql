-- Reading the OA's followers from Zalo (issue 29, `zaloflow contacts sync`): one row per run,
-- with its cursor. A page of profiles and the cursor move in one transaction, so a run killed
-- half-way resumes at the first page it had not committed.
CREATE TABLE contact_syncs (
    id           BIGSERIAL PRIMARY KEY,
    status       TEXT    NOT NULL DEFAULT 'running', -- running (also: interrupted) | done
    requested_by TEXT    NOT NULL,                   -- cli | admin | schedule
    phase        TEXT    NOT NULL DEFAULT 'followers', -- followers | others | done
    next_offset  BIGINT NOT NULL DEFAULT 0,         -- getlist offset of the next page
    total        BIGINT,                            -- Zalo's data.total of the current phase
    listed       BIGINT NOT NULL DEFAULT 0,         -- users listed (and looked up)
    created      BIGINT NOT NULL DEFAULT 0,         -- contacts zaloflow did not know
    updated      BIGINT NOT NULL DEFAULT 0,         -- contacts it knew
    unreadable   BIGINT NOT NULL DEFAULT 0,         -- profiles Zalo refused (e.g. -201)
    started_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    error        TEXT                                -- the last failure, while it lasts
);
-- At most one run is unfinished: a second request joins it.
CREATE UNIQUE INDEX contact_syncs_one_running ON contact_syncs (status) WHERE status = 'running';

-- When Zalo's profile of the contact was last read (a sync or a first-sight lookup); NULL: not
-- yet, so `serve` looks it up in the background (`profile_retry_at`: not before then, after a
-- failure); 0: Zalo refused it for good.
ALTER TABLE contacts ADD COLUMN profile_read_at BIGINT;
ALTER TABLE contacts ADD COLUMN profile_retry_at BIGINT;
CREATE INDEX contacts_profile_due ON contacts (first_seen) WHERE profile_read_at IS NULL;
