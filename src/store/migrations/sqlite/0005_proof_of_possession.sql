-- Version 5: proof-of-possession settings of a client. How it authenticates
-- with a certificate (RFC 8705): the kind (subject_dn, san_dns, san_uri,
-- san_ip, san_email for tls_client_auth; self_signed for
-- self_signed_tls_client_auth) and its value (the subject name, or the
-- certificate's SHA-256 thumbprint); both NULL for a client that uses its
-- secret. And whether its token requests must carry a DPoP proof.
ALTER TABLE clients ADD COLUMN tls_auth_kind TEXT;
ALTER TABLE clients ADD COLUMN tls_auth_value TEXT;
ALTER TABLE clients ADD COLUMN require_dpop BOOLEAN NOT NULL DEFAULT FALSE;
