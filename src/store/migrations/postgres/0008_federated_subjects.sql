-- Version 8: workload identity federation. A client lists the external
-- subjects (an exact `sub` or a pattern with `*` segments) of a trusted
-- issuer, named as in the configuration, whose tokens get its tokens.
-- Earlier binaries ignore the table: they offer no federated grant.
CREATE TABLE federated_subjects (
    client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    issuer     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, issuer, subject)
);
