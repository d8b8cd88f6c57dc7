-- A drip step due for many members writes one job per member: keep those writes to the
-- indexes something reads.

-- Jobs were listed by status through (status, id); the list that needs an index is the dead
-- letters' (few among many sent), and a new pending job does not enter this one.
DROP INDEX outbox_status;
CREATE INDEX outbox_dead ON outbox (id) WHERE status = 'dead';
