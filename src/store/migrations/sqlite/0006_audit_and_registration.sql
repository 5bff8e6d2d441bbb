-- Version 6: the audit trail and dynamic client registration (see the
-- PostgreSQL migration). The audit trail is append-only: triggers refuse any UPDATE, and any DELETE of a record younger than a day
-- (retention pruning keeps at least one day).
CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    actor_id   TEXT NOT NULL,
    request_id TEXT,
    peer_ip    TEXT,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    changes    TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_target ON audit_log (target);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_early_delete BEFORE DELETE ON audit_log
WHEN OLD.at > unixepoch() - 86400
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: records are kept at least a day');
END;

-- Clients registered through RFC 7591 dynamic registration: the hash of
-- each one's registration access token (RFC 7592), gone with the client.
CREATE TABLE client_registrations (
    client_id  TEXT PRIMARY KEY NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    token_hash BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
