-- Deliveries waiting for another attempt are stored as 'queued' (the claim query
-- walks one index in due order); 'deferred' is derived from their attempts.
UPDATE deliveries SET status = 'queued' WHERE status = 'deferred';
