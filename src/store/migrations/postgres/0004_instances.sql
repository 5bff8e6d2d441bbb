-- Version 4: the live instances of a fleet. Each running instance renews its
-- row every few seconds; a row not renewed for a while belongs to an instance
-- that is gone, and is deleted by the next heartbeat of any other. Per-client
-- rate limits are divided by the number of live rows.
CREATE TABLE instances (
    id         TEXT PRIMARY KEY,
    version    TEXT NOT NULL DEFAULT '',
    started_at BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL
);
CREATE INDEX instances_last_seen ON instances (last_seen);
