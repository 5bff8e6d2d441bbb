-- Version 2: revoked tokens and the change log that other instances poll.
CREATE TABLE revocations (
    jti        TEXT PRIMARY KEY NOT NULL,
    client_id  TEXT NOT NULL,
    exp        INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL
);
CREATE INDEX revocations_exp ON revocations (exp);

-- One row per client write or revocation; `seq` is the feed cursor.
CREATE TABLE changes (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('client', 'revocation')),
    key  TEXT NOT NULL,
    at   INTEGER NOT NULL
);
CREATE INDEX changes_at ON changes (at);
