-- The first schema of maskrelay. Timestamps are Unix milliseconds (BIGINT) and ids are
-- text, because sqlx's `Any` driver carries only integers, floats, text and bytes.
-- Columns ending in `_enc` hold AES-256-GCM ciphertext; `email_index` is a keyed HMAC.

CREATE TABLE organisations (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    api_key_hash  BYTEA NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL
);

CREATE TABLE members (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES organisations (id),
    external_id     TEXT NOT NULL,
    status          TEXT NOT NULL,
    email_index     BYTEA,
    email_enc       BYTEA,
    name_enc        BYTEA,
    attributes_enc  BYTEA,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (org_id, external_id)
);
CREATE INDEX members_email_index ON members (org_id, email_index);

CREATE TABLE conversations (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organisations (id),
    member_a    TEXT NOT NULL REFERENCES members (id),
    member_b    TEXT NOT NULL REFERENCES members (id),
    created_at  BIGINT NOT NULL,
    UNIQUE (org_id, member_a, member_b)
);

CREATE TABLE relay_addresses (
    token            TEXT PRIMARY KEY,
    conversation_id  TEXT NOT NULL REFERENCES conversations (id),
    member_id        TEXT NOT NULL REFERENCES members (id),
    issued_to        TEXT NOT NULL REFERENCES members (id),
    created_at       BIGINT NOT NULL,
    UNIQUE (conversation_id, member_id, issued_to)
);

CREATE TABLE messages (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organisations (id),
    conversation_id  TEXT NOT NULL REFERENCES conversations (id),
    sender_id        TEXT NOT NULL REFERENCES members (id),
    recipient_id     TEXT NOT NULL REFERENCES members (id),
    origin           TEXT NOT NULL,
    rfc_message_id   TEXT NOT NULL UNIQUE,
    created_at       BIGINT NOT NULL
);
CREATE INDEX messages_conversation ON messages (conversation_id, created_at);

CREATE TABLE deliveries (
    id               TEXT PRIMARY KEY,
    message_id       TEXT NOT NULL REFERENCES messages (id),
    status           TEXT NOT NULL,
    recipient_enc    BYTEA,
    content_enc      BYTEA,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    lease_until      BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_message ON deliveries (message_id);

CREATE TABLE idempotency_keys (
    org_id        TEXT NOT NULL REFERENCES organisations (id),
    idem_key      TEXT NOT NULL,
    request_hash  BYTEA NOT NULL,
    response      TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (org_id, idem_key)
);
