-- Member and organisation controls: messaging switched off for a whole organisation,
-- limits on new conversations, members who accept no member messages, and blocks.

ALTER TABLE organisations ADD COLUMN member_messaging BIGINT NOT NULL DEFAULT 1;
ALTER TABLE organisations ADD COLUMN new_conversations_per_hour BIGINT NOT NULL DEFAULT 20;
ALTER TABLE organisations ADD COLUMN new_conversations_per_day BIGINT NOT NULL DEFAULT 100;
ALTER TABLE members ADD COLUMN accepts_messages BIGINT NOT NULL DEFAULT 1;
ALTER TABLE conversations ADD COLUMN started_by TEXT REFERENCES members (id);
CREATE INDEX conversations_started_by ON conversations (started_by, created_at);

CREATE TABLE blocks (
    blocker_id  TEXT NOT NULL REFERENCES members (id),
    blocked_id  TEXT NOT NULL REFERENCES members (id),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
);
