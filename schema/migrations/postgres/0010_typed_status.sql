-- A delivery's status is stored as it is shown: 'deferred' once an attempt failed
-- for now (it was stored as 'queued' and told apart by its attempts). Pending
-- deliveries are those with a due_at: the claim walks that column's index in due
-- order, whatever their status; a delivery that ended has none.
ALTER TABLE deliveries ADD COLUMN due_at BIGINT;
UPDATE deliveries SET due_at = next_attempt_at WHERE status = 'queued';
UPDATE deliveries SET status = 'deferred' WHERE status = 'queued' AND attempts > 0;
DROP INDEX deliveries_due;
ALTER TABLE deliveries DROP COLUMN next_attempt_at;
CREATE INDEX deliveries_due ON deliveries (due_at) WHERE due_at IS NOT NULL;

-- Whether a bounce was hard or soft has a column; it was only in the error's text.
ALTER TABLE deliveries ADD COLUMN bounce TEXT;
UPDATE deliveries SET bounce = 'hard' WHERE status = 'bounced' AND last_error LIKE 'bounced (hard)%';
UPDATE deliveries SET bounce = 'soft' WHERE status = 'bounced' AND last_error LIKE 'bounced (soft)%';

-- The two members of a message are its writer and its reader, as everywhere else.
ALTER TABLE messages RENAME COLUMN sender_id TO writer_id;
ALTER TABLE messages RENAME COLUMN recipient_id TO reader_id;
