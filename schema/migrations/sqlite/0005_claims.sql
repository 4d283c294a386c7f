-- Which instance holds a delivery's lease, so that an instance restarted after a crash
-- takes back its own claims at once instead of waiting for their leases to run out.
ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
CREATE INDEX deliveries_claimed_by ON deliveries (claimed_by);
