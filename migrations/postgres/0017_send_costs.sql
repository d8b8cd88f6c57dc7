-- What each send was billed as (issue 25): its message class (`consultation_free`,
-- `consultation_paid`, `transaction`, `promotion`, `template_phone`, `sms`, `email`) and its
-- price in VND, set when it is sent. NULL for rows sent before this migration and for calls
-- that are not messages (tags, staff notices).
ALTER TABLE outbox ADD COLUMN send_class TEXT;
ALTER TABLE outbox ADD COLUMN cost_vnd BIGINT;
-- What the budget and the report add up: sends by time.
CREATE INDEX outbox_spend ON outbox (sent_at) WHERE status = 'sent' AND cost_vnd IS NOT NULL;
