-- Addresses an organisation no longer sends to, after a hard bounce: by blind index,
-- so a member whose email the directory changes is reachable again at once.
CREATE TABLE suppressions (
    org_id       TEXT NOT NULL REFERENCES organisations (id),
    email_index  BYTEA NOT NULL,
    reason       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (org_id, email_index)
);
