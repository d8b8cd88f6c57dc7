-- A send that could not be attempted is kept as a row with status `skipped` and its reason
-- (never claimed, never dead-lettered): `skip_reason` is the code (`not_configured`, …, the
-- `reason` label of zaloflow_jobs_skipped_total), `last_error` the words staff read.
ALTER TABLE outbox ADD COLUMN skip_reason TEXT;
