-- Privacy settings of organisations, secondary addresses of members, machine-generated
-- mail that was recorded instead of relayed, and retention of delivered content.
-- Flags are BIGINT 0/1: sqlx's `Any` driver reads integers the same on both databases.

ALTER TABLE organisations ADD COLUMN remove_foreign_addresses BIGINT NOT NULL DEFAULT 0;
ALTER TABLE organisations ADD COLUMN relay_auto_replies BIGINT NOT NULL DEFAULT 0;
ALTER TABLE organisations ADD COLUMN retention_days BIGINT NOT NULL DEFAULT 0;

CREATE TABLE member_addresses (
    member_id    TEXT NOT NULL REFERENCES members (id),
    org_id       TEXT NOT NULL REFERENCES organisations (id),
    email_index  BYTEA NOT NULL,
    email_enc    BYTEA NOT NULL,
    PRIMARY KEY (member_id, email_index)
);
CREATE INDEX member_addresses_index ON member_addresses (org_id, email_index);

CREATE TABLE inbound_events (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organisations (id),
    conversation_id  TEXT NOT NULL REFERENCES conversations (id),
    member_id        TEXT NOT NULL REFERENCES members (id),
    kind             TEXT NOT NULL,
    created_at       BIGINT NOT NULL
);
CREATE INDEX inbound_events_conversation ON inbound_events (conversation_id, kind);

ALTER TABLE deliveries ADD COLUMN purge_after BIGINT;
CREATE INDEX deliveries_purge ON deliveries (purge_after);
