-- A drip step due for many members writes one job and one mark per member: keep those writes
-- to the indexes something reads.

-- Nothing searches jobs by status and id: the admin list scans by id, the next due job comes
-- from outbox_due.
DROP INDEX outbox_status;

-- Marks are looked up by their key only: one B-tree (the key) instead of a table and its key.
CREATE TABLE scheduler_marks_by_key (
    key TEXT PRIMARY KEY,
    at  INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO scheduler_marks_by_key (key, at) SELECT key, at FROM scheduler_marks;
DROP TABLE scheduler_marks;
ALTER TABLE scheduler_marks_by_key RENAME TO scheduler_marks;
