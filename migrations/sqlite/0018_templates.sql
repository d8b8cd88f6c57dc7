-- The OA's template messages as Zalo announces them (issue 25): each template's status from
-- `change_template_status` (a disabled one's sends wait, staff are told), and the OA's daily
-- template quota from `change_oa_daily_quota` (sends past it wait for the next day).
CREATE TABLE template_status (
    template_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE oa_quota (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    daily_quota INTEGER,
    updated_at INTEGER NOT NULL
);
-- What the quota counts: template messages sent since the start of the day.
CREATE INDEX outbox_templates_sent ON outbox (sent_at) WHERE channel = 'zns' AND status = 'sent';
