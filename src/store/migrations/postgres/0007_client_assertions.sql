-- Version 7: private_key_jwt client authentication (RFC 7523).
-- A client authenticates with a secret (the default, as before) or with a
-- JWT signed by one of its keys, registered inline (`jwks`, a JWK Set) or
-- published at `jwks_uri`. Earlier binaries ignore these columns: to them a
-- private_key_jwt client has a random secret nobody knows, so it gets no
-- token from them either.
ALTER TABLE clients ADD COLUMN token_endpoint_auth_method TEXT NOT NULL
    DEFAULT 'client_secret_basic';
ALTER TABLE clients ADD COLUMN jwks TEXT;
ALTER TABLE clients ADD COLUMN jwks_uri TEXT;
-- The `jti`s of client assertions seen by any instance, kept until the
-- assertion expires (fleet-wide replay protection,
-- client_auth.client_assertion_replay = "fleet"); pruned with revocations.
CREATE TABLE client_assertion_jtis (
    client_id TEXT NOT NULL,
    jti       TEXT NOT NULL,
    exp       BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX client_assertion_jtis_exp ON client_assertion_jtis (exp);
-- A client registered with a certificate (version 5) authenticates with it:
-- its method is the certificate method of its registration.
UPDATE clients SET token_endpoint_auth_method = CASE tls_auth_kind
    WHEN 'self_signed' THEN 'self_signed_tls_client_auth'
    ELSE 'tls_client_auth' END
    WHERE tls_auth_kind IS NOT NULL;
