-- Members who opened their personal link to a broadcast sent with
-- "delivery": "link", each counted once.
CREATE TABLE broadcast_reads (
    broadcast_id  TEXT NOT NULL REFERENCES broadcasts (id),
    member_id     TEXT NOT NULL REFERENCES members (id),
    read_at       BIGINT NOT NULL,
    PRIMARY KEY (broadcast_id, member_id)
);
