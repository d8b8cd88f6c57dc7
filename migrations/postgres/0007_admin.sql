-- The admin API's contact timeline and erasure find a contact's events and jobs by its id.
CREATE INDEX inbox_user ON inbox (user_id, id);
CREATE INDEX outbox_user ON outbox (user_id, id);
