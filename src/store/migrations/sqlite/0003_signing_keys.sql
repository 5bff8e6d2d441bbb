-- Version 3: the signing keys. The private key is sealed with AES-256-GCM
-- under the key-encryption key, which never reaches the database; `kek_id`
-- names that key without revealing it.
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY NOT NULL,
    algorithm    TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('next', 'current', 'previous', 'retired')),
    public_jwk   TEXT NOT NULL,
    kek_id       TEXT NOT NULL,
    sealed_key   BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    promote_at   INTEGER,
    activated_at INTEGER,
    demoted_at   INTEGER,
    retire_at    INTEGER,
    retired_at   INTEGER
);
-- One current key and at most one next key, whoever writes.
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys (state) WHERE state = 'current';
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (state) WHERE state = 'next';

-- Key changes travel on the change feed too, so `changes.kind` must admit
-- 'key'. SQLite cannot alter a CHECK, so the table is rebuilt under the same
-- name with the same columns and rows (the previous binary sees no
-- difference and skips kinds it does not know), and keeps its AUTOINCREMENT
-- high-water mark: a `seq` must never be handed out twice, or a poller's
-- cursor would skip new changes.
CREATE TABLE changes_v3 (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('client', 'revocation', 'key')),
    key  TEXT NOT NULL,
    at   INTEGER NOT NULL
);
INSERT INTO changes_v3 (seq, kind, key, at) SELECT seq, kind, key, at FROM changes;
DELETE FROM sqlite_sequence WHERE name = 'changes_v3';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'changes_v3', seq FROM sqlite_sequence WHERE name = 'changes';
DROP TABLE changes;
ALTER TABLE changes_v3 RENAME TO changes;
CREATE INDEX changes_at ON changes (at);
