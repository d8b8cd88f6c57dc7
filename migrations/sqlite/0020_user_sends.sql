-- A user's sends since a time, whoever sent them (a rule or staff): the cost guard reads them
-- for every Zalo job it claims (consultation window, promotions this month). Through
-- outbox_user every send the user ever had was read; outbox_user_sent held only rule sends.
-- It now holds every sent job, so it serves both (a query asking rule_id IS NOT NULL still
-- uses it). With the send's class in it, the guard's read needs nothing of the rows themselves.
-- Building it reads the outbox once, with writes held while it does.
DROP INDEX outbox_user_sent;
CREATE INDEX outbox_user_sent ON outbox (user_id, sent_at, send_class) WHERE status = 'sent';
