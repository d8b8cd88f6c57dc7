-- Campaign members wait for a step by its id, not its position (issue 26): an edited campaign
-- (a step removed, added or moved) no longer shifts its members onto the wrong step.

-- The id of the step the member waits for (NULL once done or left). Rows written before this
-- migration have only their position (`step`): the first scheduler pass maps each to the id of
-- the step at that position in the campaign as it is then loaded, and records that order below.
ALTER TABLE campaign_members ADD COLUMN step_id TEXT;

-- Each campaign's step ids in the order the scheduler last ran them: when the rules change, the
-- scheduler compares them with this to move the members of removed steps (docs/campaigns.md).
CREATE TABLE campaign_steps (
    campaign   TEXT    NOT NULL,
    position   BIGINT NOT NULL,  -- 0-based
    step_id    TEXT    NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (campaign, position)
);
