-- Reading the OA's followers from Zalo (issue 29, `zaloflow contacts sync`): one row per run,
-- with its cursor. A page of profiles and the cursor move in one transaction, so a run killed
-- half-way resumes at the first page it had not committed.
CREATE TABLE contact_syncs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    status       TEXT    NOT NULL DEFAULT 'running', -- running (also: interrupted) | done
    requested_by TEXT    NOT NULL,                   -- cli | admin | schedule
    phase        TEXT    NOT NULL DEFAULT 'followers', -- followers | others | done
    next_offset  INTEGER NOT NULL DEFAULT 0,         -- getlist offset of the next page
    total        INTEGER,                            -- Zalo's data.total of the current phase
    listed       INTEGER NOT NULL DEFAULT 0,         -- users listed (and looked up)
    created      INTEGER NOT NULL DEFAULT 0,         -- contacts zaloflow did not know
    updated      INTEGER NOT NULL DEFAULT 0,         -- contacts it knew
    unreadable   INTEGER NOT NULL DEFAULT 0,         -- profiles Zalo refused (e.g. -201)
    started_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    error        TEXT                                -- the last failure, while it lasts
);
-- At most one run is unfinished: a second request joins it.
CREATE UNIQUE INDEX contact_syncs_one_running ON contact_syncs (status) WHERE status = 'running';

-- When Zalo's profile of the contact was last read (a sync or a first-sight lookup); NULL: not
-- yet, so `serve` looks it up in the background (`profile_retry_at`: not before then, after a
-- failure); 0: Zalo refused it for good.
ALTER TABLE contacts ADD COLUMN profile_read_at INTEGER;
ALTER TABLE contacts ADD COLUMN profile_retry_at INTEGER;
CREATE INDEX contacts_profile_due ON contacts (first_seen) WHERE profile_read_at IS NULL;
