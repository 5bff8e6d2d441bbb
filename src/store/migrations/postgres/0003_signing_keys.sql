-- Version 3: the signing keys every instance shares. The private key is
-- sealed with AES-256-GCM under the key-encryption key, which never reaches
-- the database; `kek_id` names that key without revealing it.
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    algorithm    TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('next', 'current', 'previous', 'retired')),
    public_jwk   TEXT NOT NULL,
    kek_id       TEXT NOT NULL,
    sealed_key   BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    promote_at   BIGINT,
    activated_at BIGINT,
    demoted_at   BIGINT,
    retire_at    BIGINT,
    retired_at   BIGINT
);
-- One current key and at most one next key, however many instances race to
-- promote or publish: the loser's transaction fails here.
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys (state) WHERE state = 'current';
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (state) WHERE state = 'next';

-- Key changes travel on the change feed too. Widening the check is
-- additive: the previous binary skips kinds it does not know.
ALTER TABLE changes DROP CONSTRAINT changes_kind_check;
ALTER TABLE changes ADD CONSTRAINT changes_kind_check
    CHECK (kind IN ('client', 'revocation', 'key'));
