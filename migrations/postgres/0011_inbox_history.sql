-- A contact's history without a per-user index on the inbox. `inbox_user (user_id, id)` took an
-- entry on a random page (its user's) in every commit a webhook waited for, the one write of
-- the intake that grew with the file: over 30 s of load the webhooks' p99 went from ~8 to
-- ~11.5 ms with it (README, benchmarks). Instead, each event is linked to its user's previous
-- finished one when it leaves `pending` (`prev_id`, written by the same UPDATE that marks it
-- done or failed, on a row the completion rewrites anyway), and `inbox_heads` keeps each
-- user's latest finished event: the timeline walks back from the head, and a user's pending
-- events are found through `inbox_lane`. One user's events finish in id order (their lane),
-- so each link points to a smaller id.
ALTER TABLE inbox ADD COLUMN prev_id BIGINT;
CREATE TABLE inbox_heads (
    user_id TEXT PRIMARY KEY,
    last_id BIGINT NOT NULL
);
UPDATE inbox SET prev_id = chained.prev
FROM (
    SELECT id, LAG(id) OVER (PARTITION BY user_id ORDER BY id) AS prev
    FROM inbox WHERE user_id <> '' AND status <> 'pending'
) AS chained
WHERE inbox.id = chained.id AND chained.prev IS NOT NULL;
INSERT INTO inbox_heads (user_id, last_id)
SELECT user_id, MAX(id) FROM inbox WHERE user_id <> '' AND status <> 'pending' GROUP BY user_id;
DROP INDEX inbox_user;
