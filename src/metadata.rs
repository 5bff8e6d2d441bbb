//! The RFC 8414 authorization server metadata document: what a client can
//! learn about this server from its well-known address.

use serde_json::json;

use crate::domain::client::AuthMethod;
use crate::domain::dpop::PROOF_ALGORITHMS;
use crate::domain::exchange::TOKEN_EXCHANGE;
use crate::keys::KeySet;
use crate::keys::public::VerifyAlgorithm;

/// The `aud` values a client assertion may carry: the issuer and the URLs
/// of the endpoints that accept client authentication, as this document
/// publishes them.
pub fn assertion_audiences(issuer: &str) -> Vec<String> {
    std::iter::once(issuer.to_owned())
        .chain(
            ["token", "introspect", "revoke"]
                .iter()
                .map(|endpoint| format!("{issuer}/oauth/{endpoint}")),
        )
        .collect()
}

/// Builds the metadata document for `issuer`; `registration`: dynamic
/// client registration is on (`registration_endpoint`).
pub fn metadata_document(
    issuer: &str,
    keys: &KeySet,
    scopes: &[String],
    registration: bool,
) -> Vec<u8> {
    let auth_methods: Vec<&str> = AuthMethod::ALL.iter().map(|m| m.name()).collect();
    let assertion_algs: Vec<&str> = VerifyAlgorithm::ALL.iter().map(|a| a.name()).collect();
    let mut doc = json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/oauth/token"),
        "jwks_uri": format!("{issuer}/oauth/jwks"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "introspection_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "grant_types_supported": ["client_credentials", TOKEN_EXCHANGE],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": auth_methods,
        "service_documentation": format!("{issuer}/oauth/"),
        // RFC 8705 3.3: a token issued over mutual TLS is bound to the
        // certificate; the endpoints are the same with or without it.
        "tls_client_certificate_bound_access_tokens": true,
        "dpop_signing_alg_values_supported": PROOF_ALGORITHMS,
    });
    if let Some(obj) = doc.as_object_mut() {
        if !scopes.is_empty() {
            obj.insert("scopes_supported".into(), json!(scopes));
        }
        if registration {
            obj.insert(
                "registration_endpoint".into(),
                json!(format!("{issuer}/register")),
            );
        }
        obj.insert(
            "access_token_signing_alg_values_supported".into(),
            json!([keys.active().alg().name()]),
        );
    }
    doc.to_string().into_bytes()
}
