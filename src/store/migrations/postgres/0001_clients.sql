-- Version 1: the client registry (the same columns as the embedded store).
-- Lists (scopes, audiences) are stored space-separated: neither scope tokens
-- nor audience URIs may contain spaces.
CREATE TABLE clients (
    id                         TEXT PRIMARY KEY,
    name                       TEXT NOT NULL,
    secret_hash                BYTEA NOT NULL,
    previous_secret_hash       BYTEA,
    previous_secret_expires_at BIGINT,
    secret_imported            BOOLEAN NOT NULL DEFAULT FALSE,
    allowed_scopes             TEXT NOT NULL DEFAULT '',
    default_scopes             TEXT NOT NULL DEFAULT '',
    allowed_audiences          TEXT NOT NULL DEFAULT '',
    token_lifetime_secs        BIGINT,
    rate_limit_rps             BIGINT,
    enabled                    BOOLEAN NOT NULL DEFAULT TRUE,
    tokens_valid_after         BIGINT NOT NULL DEFAULT 0,
    created_at                 BIGINT NOT NULL,
    updated_at                 BIGINT NOT NULL
);
