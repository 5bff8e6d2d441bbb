-- Version 2: revoked tokens and the change log that other instances follow.
CREATE TABLE revocations (
    jti        TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    exp        BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX revocations_exp ON revocations (exp);

-- One row per client write or revocation; `seq` is the feed cursor. Writers
-- serialize on an advisory lock, so `seq` order is commit order and a reader
-- never skips a row that commits late.
CREATE TABLE changes (
    seq  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('client', 'revocation')),
    key  TEXT NOT NULL,
    at   BIGINT NOT NULL
);
CREATE INDEX changes_at ON changes (at);

-- Wakes every instance LISTENing on auth_server_changes when a change
-- commits, so they poll at once instead of at the next interval. Once per
-- statement: the payload is empty, listeners read the rows themselves.
CREATE FUNCTION auth_server_notify_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('auth_server_changes', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER changes_notify AFTER INSERT ON changes
    FOR EACH STATEMENT EXECUTE FUNCTION auth_server_notify_changes();
