-- Sender authentication: what an organisation accepts from domains that publish no
-- SPF record and sign nothing, and how each relayed reply's sender was proven.

ALTER TABLE organisations ADD COLUMN accept_unauthenticated BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN sender_auth TEXT;
