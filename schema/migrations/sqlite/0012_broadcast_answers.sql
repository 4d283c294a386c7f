-- Where an organisation's members are sent when they answer a broadcast that takes
-- no replies: its contact page.
ALTER TABLE organisations ADD COLUMN contact_url TEXT;
-- When each member was last told so, for at most one such answer a day.
CREATE TABLE broadcast_answers (
    member_id    TEXT PRIMARY KEY REFERENCES members (id),
    answered_at  BIGINT NOT NULL
);
-- A broadcast walks an organisation's members in id order, a batch at a time: with
-- this index each batch is a range read, not a sort of every member.
CREATE INDEX members_org_order ON members (org_id, id);
