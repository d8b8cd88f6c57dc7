-- The latest firing of each rule for each contact: enough to judge every limit (once per day,
-- period, silence spell or ever compare with the latest period key; cooldowns with its time).
CREATE TABLE rule_state (
    user_id    TEXT    NOT NULL,
    rule_id    TEXT    NOT NULL,
    period_key TEXT    NOT NULL,
    fired_at   BIGINT NOT NULL,
    fires      BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (user_id, rule_id)
);
