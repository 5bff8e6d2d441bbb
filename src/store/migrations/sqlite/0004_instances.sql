-- Version 4: the live instances of a fleet (see the PostgreSQL migration).
-- The embedded store usually has one, but several processes may share a file.
CREATE TABLE instances (
    id         TEXT PRIMARY KEY NOT NULL,
    version    TEXT NOT NULL DEFAULT '',
    started_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL
);
CREATE INDEX instances_last_seen ON instances (last_seen);
