-- Every event a user causes moves their contact's last interaction, and each index on that
-- column is an entry deleted and another inserted per event. `contacts_inactivity` (re-activation
-- scans) starts with the same column and serves every range or order on it; the plain index is
-- one index too many.
DROP INDEX contacts_last_interaction;
