-- Why a reply by mail was refused (an inactive member, a block...), recorded with
-- the event so that the organisation can see it; NULL for other kinds of event.
ALTER TABLE inbound_events ADD COLUMN reason TEXT;
