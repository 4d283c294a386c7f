-- Broadcasts: the organisation writes to many members at once.
--
-- A broadcast's copies are messages like any other (so that the queue, DKIM,
-- VERP bounces and suppression treat them alike), but the organisation wrote them
-- and they belong to no conversation: messages.writer_id and conversation_id may be
-- NULL, and broadcast_id names the broadcast.
CREATE TABLE categories (
    org_id      TEXT NOT NULL REFERENCES organisations (id),
    id          TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (org_id, id)
);

CREATE TABLE category_optouts (
    member_id    TEXT NOT NULL REFERENCES members (id),
    org_id       TEXT NOT NULL,
    category_id  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (member_id, category_id),
    FOREIGN KEY (org_id, category_id) REFERENCES categories (org_id, id)
);

-- spec_enc: the audience and the content, encrypted (JSON). cursor: the last
-- member (by id) whose copy is stored; a batch of copies and the cursor move in
-- one transaction, so a restart neither repeats nor skips anyone.
CREATE TABLE broadcasts (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organisations (id),
    category_id   TEXT NOT NULL,
    reply_policy  TEXT NOT NULL,
    spec_enc      BYTEA NOT NULL,
    sent_by_enc   BYTEA,
    api_key       TEXT NOT NULL,
    status        TEXT NOT NULL,
    recipients    BIGINT NOT NULL,
    queued        BIGINT NOT NULL DEFAULT 0,
    expanded_to   TEXT,
    lease_until   BIGINT,
    claimed_by    TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX broadcasts_org ON broadcasts (org_id, created_at);
CREATE INDEX broadcasts_expanding ON broadcasts (created_at) WHERE status = 'expanding';

ALTER TABLE messages ALTER COLUMN writer_id DROP NOT NULL;
ALTER TABLE messages ALTER COLUMN conversation_id DROP NOT NULL;
ALTER TABLE messages ADD COLUMN broadcast_id TEXT REFERENCES broadcasts (id);
-- One copy of a broadcast per member, whatever happens.
CREATE UNIQUE INDEX messages_broadcast ON messages (broadcast_id, reader_id)
    WHERE broadcast_id IS NOT NULL;

-- Deliveries of a conversation (lane 0) go before bulk ones (lane 1).
ALTER TABLE deliveries ADD COLUMN lane BIGINT NOT NULL DEFAULT 0;
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (lane, due_at) WHERE due_at IS NOT NULL;

-- An organisation's broadcast rate, and when its next bulk copy may go.
ALTER TABLE organisations ADD COLUMN broadcast_per_minute BIGINT NOT NULL DEFAULT 60000;
ALTER TABLE organisations ADD COLUMN bulk_next_due BIGINT NOT NULL DEFAULT 0;
