-- Version 1: the client registry.
-- Lists (scopes, audiences) are stored space-separated: neither scope tokens
-- nor audience URIs may contain spaces.
CREATE TABLE clients (
    id                         TEXT PRIMARY KEY NOT NULL,
    name                       TEXT NOT NULL,
    secret_hash                BLOB NOT NULL,
    previous_secret_hash       BLOB,
    previous_secret_expires_at INTEGER,
    secret_imported            INTEGER NOT NULL DEFAULT 0,
    allowed_scopes             TEXT NOT NULL DEFAULT '',
    default_scopes             TEXT NOT NULL DEFAULT '',
    allowed_audiences          TEXT NOT NULL DEFAULT '',
    token_lifetime_secs        INTEGER,
    rate_limit_rps             INTEGER,
    enabled                    INTEGER NOT NULL DEFAULT 1,
    tokens_valid_after         INTEGER NOT NULL DEFAULT 0,
    created_at                 INTEGER NOT NULL,
    updated_at                 INTEGER NOT NULL
);
