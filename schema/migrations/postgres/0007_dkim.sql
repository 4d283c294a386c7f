-- DKIM keys of the relay domain, shared by every instance on this database. The
-- private key (PKCS#8) is encrypted like personal data; the public key is what the
-- selector's TXT record publishes. A retired key neither signs nor needs publishing.
CREATE TABLE dkim_keys (
    selector     TEXT PRIMARY KEY,
    algorithm    TEXT NOT NULL,
    private_key  BYTEA NOT NULL,
    public_key   BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    retired_at   BIGINT
);
