//! Client authentication for the token, introspection and revocation
//! endpoints: `client_secret_basic` (RFC 6749 2.3.1, form-encoded id and
//! secret inside HTTP Basic), `client_secret_post` / JSON body fields,
//! `private_key_jwt` (RFC 7523 2.2: `client_assertion_type` and
//! `client_assertion` in the body), or `tls_client_auth` and
//! `self_signed_tls_client_auth` (RFC 8705 2): the `client_id` alone in the
//! body, over a connection with the client's certificate. Which of them a
//! client may use is its `token_endpoint_auth_method`
//! ([`Client::accepts`]).

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;

use super::body::{Params, form_decode};
use super::error::{StoreCall, store_failed};
use crate::audit::{self, SecurityEvent};
use crate::client_assertion::{AssertionFailure, Lookup};
use crate::domain::assertion::JWT_BEARER;
use crate::domain::certificate::PresentedCertificate;
use crate::domain::client::{
    Client, Credential, is_valid_client_id, verify_secret_of_unknown_client,
};
use crate::domain::error::OAuthError;
use crate::state::AppState;

/// Credentials as presented, before they are checked.
#[derive(PartialEq, Eq)]
pub struct Credentials {
    /// The claimed client id.
    pub client_id: String,
    /// The presented secret.
    pub secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// What the client presented to authenticate.
#[derive(PartialEq, Eq)]
pub enum Presented {
    /// An id and a secret.
    Secret(Credentials),
    /// A JWT client assertion, and the `client_id` parameter if present.
    Assertion {
        /// The compact JWS.
        assertion: String,
        /// `client_id` from the body, which must match the assertion.
        client_id: Option<String>,
    },
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Secret(credentials) => credentials.fmt(f),
            // The assertion is a credential until it expires: never shown.
            Self::Assertion { client_id, .. } => f
                .debug_struct("Assertion")
                .field("client_id", client_id)
                .finish_non_exhaustive(),
        }
    }
}

/// Reads the client authentication of a request: an assertion
/// (`client_assertion_type` and `client_assertion`), or else a secret.
/// An assertion together with a secret or HTTP Basic is `invalid_request`.
pub fn extract_presented(headers: &HeaderMap, params: &Params) -> Result<Presented, OAuthError> {
    let assertion_type = params.single("client_assertion_type")?;
    let assertion = params.single("client_assertion")?;
    if assertion_type.is_none() && assertion.is_none() {
        return extract_credentials(headers, params).map(Presented::Secret);
    }
    let (Some(assertion_type), Some(assertion)) = (assertion_type, assertion) else {
        return Err(OAuthError::invalid_request(
            "client_assertion_type and client_assertion go together",
        ));
    };
    if assertion_type != JWT_BEARER {
        return Err(OAuthError::invalid_request(
            "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ));
    }
    if params.single("client_secret")?.is_some() || basic_credentials(headers)?.is_some() {
        return Err(OAuthError::invalid_request(
            "use one client authentication method, not both",
        ));
    }
    Ok(Presented::Assertion {
        assertion: assertion.to_owned(),
        client_id: params.single("client_id")?.map(str::to_owned),
    })
}

/// Extracts the credentials from the `Authorization` header or the body.
/// Both at once is `invalid_request`; neither is `invalid_client`.
pub fn extract_credentials(
    headers: &HeaderMap,
    params: &Params,
) -> Result<Credentials, OAuthError> {
    let body_id = params.single("client_id")?;
    let body_secret = params.single("client_secret")?;
    let basic = basic_credentials(headers)?;
    match (basic, body_id, body_secret) {
        (Some(_), _, Some(_)) => Err(OAuthError::invalid_request(
            "use one client authentication method, not both",
        )),
        (Some(basic), Some(id), None) if id != basic.client_id => Err(OAuthError::invalid_request(
            "client_id in the body differs from the authenticated client",
        )),
        (Some(basic), _, None) => Ok(basic),
        (None, Some(id), Some(secret)) => Ok(Credentials {
            client_id: id.to_owned(),
            secret: secret.to_owned(),
        }),
        (None, _, _) => Err(OAuthError::InvalidClient),
    }
}

/// Parses `Authorization: Basic`, if present. Another scheme is ignored here
/// (it authenticates nothing at these endpoints); a broken Basic value is
/// `invalid_client`.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<Credentials>, OAuthError> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(OAuthError::invalid_request(
            "Authorization header is repeated",
        ));
    }
    let value = value.as_bytes();
    let Some(encoded) = value
        .get(..6)
        .filter(|scheme| scheme.eq_ignore_ascii_case(b"basic "))
        .map(|_| value[6..].trim_ascii())
    else {
        return Ok(None);
    };
    let decoded = STANDARD
        .decode(encoded)
        .map_err(|_| OAuthError::InvalidClient)?;
    let colon = decoded
        .iter()
        .position(|&b| b == b':')
        .ok_or(OAuthError::InvalidClient)?;
    let client_id = form_decode(&decoded[..colon]).ok_or(OAuthError::InvalidClient)?;
    let secret = form_decode(&decoded[colon + 1..]).ok_or(OAuthError::InvalidClient)?;
    if client_id.is_empty() {
        return Err(OAuthError::InvalidClient);
    }
    Ok(Some(Credentials { client_id, secret }))
}

/// Authenticates a client: extracts credentials, looks the client up and
/// checks the secret in constant time. Unknown, wrong and disabled all give
/// the same `invalid_client`, after the same amount of hashing. An id that
/// breaks the client-id rule is refused before any cache or store sees it.
/// While failed authentications pass the server-wide ceiling, only clients
/// already in memory that present the right secret are served; every other
/// attempt gets 429 without reaching the store.
///
/// A request that names a `client_id` and carries no secret authenticates
/// with `certificate`, the connection's client certificate, if there is
/// one. A client registered with a certificate never authenticates with
/// its secret.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    peer: Option<IpAddr>,
    certificate: Option<&PresentedCertificate>,
) -> Result<Arc<Client>, OAuthError> {
    if let Some(ip) = peer {
        state.limits.check_ip(ip)?;
    }
    let result = match (certificate, certificate_client_id(headers, params)?) {
        (Some(certificate), Some(client_id)) => {
            authenticate_certificate(state, client_id, certificate).await
        }
        _ => authenticate_credentials(state, headers, params).await,
    };
    if let (Err(OAuthError::InvalidClient), Some(ip)) = (&result, peer) {
        let trips = state.limits.record_failed_auth(ip);
        if trips.ip_blocked {
            audit::security_event(
                SecurityEvent::FailedAuthGuardTripped,
                Some(ip),
                "failed client authentications from this caller: blocked for a while",
            );
        }
        if trips.ceiling_reached {
            audit::security_event(
                SecurityEvent::ClientAuthFailureBurst,
                Some(ip),
                "server-wide burst of failed client authentications: ceiling reached",
            );
        }
    }
    result
}

/// Whether a request carries client authentication at all: an
/// `Authorization` header, a secret, an assertion, or a `client_id` over a
/// connection with a client certificate (RFC 8705 2). A `client_id` alone
/// authenticates nothing. For grants where the client may stay
/// unauthenticated (token exchange: the subject token is the credential).
pub fn presents_client_authentication(
    headers: &HeaderMap,
    params: &Params,
    has_certificate: bool,
) -> Result<bool, OAuthError> {
    Ok(headers.contains_key(http::header::AUTHORIZATION)
        || params.single("client_secret")?.is_some()
        || params.single("client_assertion")?.is_some()
        || params.single("client_assertion_type")?.is_some()
        || (has_certificate && params.single("client_id")?.is_some()))
}

/// The `client_id` of a request that presents no other credential (no
/// `Authorization`, no secret, no assertion): a certificate-authenticated
/// request (RFC 8705 2).
fn certificate_client_id<'p>(
    headers: &HeaderMap,
    params: &'p Params,
) -> Result<Option<&'p str>, OAuthError> {
    if headers.contains_key(http::header::AUTHORIZATION)
        || params.single("client_secret")?.is_some()
        || params.single("client_assertion")?.is_some()
    {
        return Ok(None);
    }
    params.single("client_id")
}

/// RFC 8705 2: the client's registration accepts the presented certificate
/// (a chain to a configured CA with the registered subject name, or the
/// registered self-signed certificate). Refusals are `invalid_client`, as
/// for a wrong secret.
async fn authenticate_certificate(
    state: &AppState,
    client_id: &str,
    certificate: &PresentedCertificate,
) -> Result<Arc<Client>, OAuthError> {
    if !is_valid_client_id(client_id) {
        return Err(OAuthError::InvalidClient);
    }
    let client = if let Err(denied) = state.limits.check_failed_auth_ceiling() {
        state.clients.get_cached(client_id).ok_or(denied)?
    } else {
        state
            .clients
            .get(client_id)
            .await
            .map_err(|e| store_failed(StoreCall::ClientLookup, &e))?
            .ok_or(OAuthError::InvalidClient)?
    };
    match &client.tls_client_auth {
        Some(registered)
            if client.accepts(Credential::Certificate) && registered.accepts(certificate) =>
        {
            Ok(client)
        }
        _ => Err(OAuthError::InvalidClient),
    }
}

/// Whether `secret` authenticates `client` now: only for a client whose
/// method is a secret one (the comparison runs all the same).
fn secret_accepted(client: &Client, secret: &str, now: i64) -> bool {
    client.verify_secret(secret, now) && client.accepts(Credential::Secret)
}

async fn authenticate_credentials(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Arc<Client>, OAuthError> {
    let credentials = match extract_presented(headers, params)? {
        Presented::Secret(credentials) => credentials,
        Presented::Assertion {
            assertion,
            client_id,
        } => return authenticate_assertion(state, &assertion, client_id.as_deref()).await,
    };
    if !is_valid_client_id(&credentials.client_id) {
        verify_secret_of_unknown_client(&credentials.secret);
        return Err(OAuthError::InvalidClient);
    }
    if let Err(denied) = state.limits.check_failed_auth_ceiling() {
        let now = state.now();
        return match state.clients.get_cached(&credentials.client_id) {
            Some(client) if secret_accepted(&client, &credentials.secret, now) => Ok(client),
            Some(_) => Err(denied.into()),
            None => {
                verify_secret_of_unknown_client(&credentials.secret);
                Err(denied.into())
            }
        };
    }
    let client = state
        .clients
        .get(&credentials.client_id)
        .await
        .map_err(|e| store_failed(StoreCall::ClientLookup, &e))?;
    let Some(client) = client else {
        verify_secret_of_unknown_client(&credentials.secret);
        return Err(OAuthError::InvalidClient);
    };
    if secret_accepted(&client, &credentials.secret, state.now()) {
        Ok(client)
    } else {
        Err(OAuthError::InvalidClient)
    }
}

/// Authenticates a client by its assertion. While failed authentications
/// pass the server-wide ceiling, only clients (and `jwks_uri` keys)
/// already in memory are served.
async fn authenticate_assertion(
    state: &AppState,
    assertion: &str,
    client_id: Option<&str>,
) -> Result<Arc<Client>, OAuthError> {
    let ceiling = state.limits.check_failed_auth_ceiling();
    let lookup = match ceiling {
        Ok(()) => Lookup::Full,
        Err(_) => Lookup::MemoryOnly,
    };
    let result = state
        .assertions
        .authenticate(assertion, client_id, &state.clients, lookup, state.now())
        .await;
    match (result, ceiling) {
        (Ok(client), _) => Ok(client),
        (Err(AssertionFailure::ClientLookup(e)), _) => {
            Err(store_failed(StoreCall::ClientLookup, &e))
        }
        (Err(AssertionFailure::ReplayCheck(e)), _) => {
            Err(store_failed(StoreCall::AssertionReplay, &e))
        }
        // Over the ceiling, every failure is the 429 a secret gets.
        (Err(_), Err(denied)) => Err(denied.into()),
        (Err(AssertionFailure::Refused(reason)), Ok(())) => {
            tracing::info!(reason, "client assertion refused");
            Err(OAuthError::InvalidClient)
        }
        (Err(AssertionFailure::NotCached), Ok(())) => Err(OAuthError::InvalidClient),
    }
}

/// Reads an introspection or revocation request (RFC 7662 2.1, RFC 7009
/// 2.1): authenticates the client and returns it with the required `token`.
/// `token_type_hint` is optional and only checked for repetition.
pub async fn read_token_request<B>(
    state: &AppState,
    request: http::Request<B>,
) -> Result<(Arc<Client>, String), super::error::ApiError>
where
    B: hyper::body::Body<Data = bytes::Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let peer = super::peer_ip(&request);
    let (parts, params) = super::body::read_params(request, &state.body_limits).await?;
    let token = params.single("token")?.map(str::to_owned);
    params.single("token_type_hint")?;
    let certificate = super::client_certificate(&parts.extensions);
    let client = authenticate(state, &parts.headers, &params, peer, certificate.as_deref()).await?;
    let token = token.ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    Ok((client, token))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;
    use crate::http::body::parse_form;

    fn basic(user_pass: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode(user_pass));
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&value).unwrap(),
        );
        h
    }

    fn creds(id: &str, secret: &str) -> Credentials {
        Credentials {
            client_id: id.into(),
            secret: secret.into(),
        }
    }

    #[test]
    fn basic_is_form_decoded() {
        let got = extract_credentials(&basic("my%20id:s%3Acret+x"), &Params::default()).unwrap();
        assert_eq!(got, creds("my id", "s:cret x"));
        let got = extract_credentials(&basic("id:a:b"), &Params::default()).unwrap();
        assert_eq!(got, creds("id", "a:b"), "split at the first colon");
    }

    #[test]
    fn post_credentials() {
        let p = parse_form(b"client_id=a&client_secret=b").unwrap();
        assert_eq!(
            extract_credentials(&HeaderMap::new(), &p).unwrap(),
            creds("a", "b")
        );
    }

    #[test]
    fn both_methods_is_invalid_request() {
        let p = parse_form(b"client_id=a&client_secret=b").unwrap();
        let err = extract_credentials(&basic("a:b"), &p).unwrap_err();
        assert_eq!(err.code(), "invalid_request");
        let p = parse_form(b"client_id=other").unwrap();
        assert_eq!(
            extract_credentials(&basic("a:b"), &p).unwrap_err().code(),
            "invalid_request"
        );
        let p = parse_form(b"client_id=a").unwrap();
        assert_eq!(
            extract_credentials(&basic("a:b"), &p).unwrap(),
            creds("a", "b")
        );
    }

    #[test]
    fn missing_or_broken_credentials_are_invalid_client() {
        let none = Params::default();
        for headers in [HeaderMap::new(), basic("no-colon"), basic(":secret")] {
            assert_eq!(
                extract_credentials(&headers, &none).unwrap_err(),
                OAuthError::InvalidClient
            );
        }
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Basic !!!"),
        );
        assert_eq!(
            extract_credentials(&h, &none).unwrap_err(),
            OAuthError::InvalidClient
        );
        let p = parse_form(b"client_id=a").unwrap();
        assert_eq!(
            extract_credentials(&HeaderMap::new(), &p).unwrap_err(),
            OAuthError::InvalidClient
        );
    }

    #[test]
    fn an_assertion_is_read_from_the_body() {
        let form = format!("client_assertion_type={JWT_BEARER}&client_assertion=a.b.c&client_id=c");
        let p = parse_form(form.as_bytes()).unwrap();
        assert_eq!(
            extract_presented(&HeaderMap::new(), &p).unwrap(),
            Presented::Assertion {
                assertion: "a.b.c".into(),
                client_id: Some("c".into())
            }
        );
        let p = parse_form(b"client_id=a&client_secret=b").unwrap();
        assert_eq!(
            extract_presented(&HeaderMap::new(), &p).unwrap(),
            Presented::Secret(creds("a", "b"))
        );
    }

    #[test]
    fn a_broken_or_doubled_assertion_is_invalid_request() {
        let with = |form: String| parse_form(form.as_bytes()).unwrap();
        let cases = [
            (HeaderMap::new(), with("client_assertion=a.b.c".into())),
            (
                HeaderMap::new(),
                with(format!("client_assertion_type={JWT_BEARER}")),
            ),
            (
                HeaderMap::new(),
                with("client_assertion_type=urn:other&client_assertion=a.b.c".into()),
            ),
            (
                HeaderMap::new(),
                with(format!(
                    "client_assertion_type={JWT_BEARER}&client_assertion=a.b.c&client_secret=s"
                )),
            ),
            (
                basic("a:b"),
                with(format!(
                    "client_assertion_type={JWT_BEARER}&client_assertion=a.b.c"
                )),
            ),
            (
                HeaderMap::new(),
                with(format!(
                    "client_assertion_type={JWT_BEARER}&client_assertion=a&client_assertion=b"
                )),
            ),
        ];
        for (headers, params) in cases {
            assert_eq!(
                extract_presented(&headers, &params).unwrap_err().code(),
                "invalid_request",
                "{params:?}"
            );
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        assert!(!format!("{:?}", creds("id", "hunter2")).contains("hunter2"));
    }
}
