-- Contact lists (seed 000, II.5.3): a contact may be on many lists; copy/move between lists.
CREATE TABLE contact_lists (
    name        TEXT PRIMARY KEY,
    description TEXT,
    created_at  BIGINT  NOT NULL
);
CREATE TABLE list_members (
    list     TEXT    NOT NULL REFERENCES contact_lists (name) ON DELETE CASCADE,
    user_id  TEXT    NOT NULL,
    added_at BIGINT  NOT NULL,
    PRIMARY KEY (list, user_id)
);
CREATE INDEX list_members_user ON list_members (user_id, list);

-- Who registered on which form, and how often (seed 000, II.2 repeat registration).
CREATE TABLE form_submissions (
    form       TEXT    NOT NULL,
    contact_id TEXT    NOT NULL,
    first_at   BIGINT  NOT NULL,
    last_at    BIGINT  NOT NULL,
    count      BIGINT  NOT NULL,
    PRIMARY KEY (form, contact_id)
);

-- Form and import contacts are found again by email (phone has its index already).
CREATE INDEX contacts_email ON contacts (lower(email));

-- Keys the service generates once and shares across instances (the email tracking key).
CREATE TABLE app_secrets (
    name       TEXT PRIMARY KEY,
    value      TEXT    NOT NULL,
    created_at BIGINT  NOT NULL
);
