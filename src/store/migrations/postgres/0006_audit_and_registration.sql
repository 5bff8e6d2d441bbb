-- Version 6: the audit trail and dynamic client registration. Every
-- administrative change (CLI or admin API) appends one audit_log row in the same transaction as the change: who (actor and
-- actor_id, with the request id and peer address for API calls), what
-- (action, target) and the changed fields, secrets and hashes redacted.
-- Append-only: a trigger refuses any UPDATE, and any DELETE of a record
-- younger than a day (retention pruning keeps at least one day).
CREATE TABLE audit_log (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         BIGINT NOT NULL,
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
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'audit_log is append-only';
    END IF;
    IF OLD.at > EXTRACT(EPOCH FROM now())::BIGINT - 86400 THEN
        RAISE EXCEPTION 'audit_log is append-only: records are kept at least a day';
    END IF;
    RETURN OLD;
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- Clients registered through RFC 7591 dynamic registration: the hash of
-- each one's registration access token (RFC 7592), gone with the client.
CREATE TABLE client_registrations (
    client_id  TEXT PRIMARY KEY REFERENCES clients (id) ON DELETE CASCADE,
    token_hash BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
