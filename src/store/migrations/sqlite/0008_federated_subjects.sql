-- Version 8: federated subjects (see the PostgreSQL migration).
CREATE TABLE federated_subjects (
    client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    issuer     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, issuer, subject)
);
