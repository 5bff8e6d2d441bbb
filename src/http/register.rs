//! RFC 7591 dynamic client registration at `{base}/register`, and RFC 7592
//! management of a registered client at `{base}/register/{client_id}`. Off
//! unless `registration.enabled`. Registering needs an initial access
//! token: one of our access tokens carrying [`REGISTER_SCOPE`]. Each
//! registered client gets a registration access token (shown once, kept as
//! a hash) for reading, changing and deleting itself. Metadata is checked
//! against what this server does: the `client_credentials` grant only, the
//! secret methods or `private_key_jwt` (with `jwks` or `jwks_uri`), and
//! `registration.allowed_scopes`.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::{answer, authorize, parse_body};
use super::body::read_limited;
use super::error::ApiError;
use super::response::{Body, CachePolicy, json as json_response};
use super::validate::{bearer_token, invalid_token};
use super::{RequestId, peer_ip};
use crate::admin::{self, ClientUpdate, NewClient};
use crate::audit::Actor;
use crate::domain::client::{AuthMethod, Client, Credential, SecretHash, generate_secret};
use crate::domain::error::OAuthError;
use crate::state::AppState;

/// The scope an initial access token needs to register a client.
pub const REGISTER_SCOPE: &str = "auth-server:register";

/// The grant types a registered client may use.
const GRANT_TYPES: &[&str] = &["client_credentials"];

/// Client metadata (RFC 7591 section 2) as sent; unknown fields are ignored.
#[derive(Debug, Default, Deserialize)]
struct Metadata {
    client_id: Option<String>,
    client_name: Option<String>,
    grant_types: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    /// The client's public keys, a JWK Set (a JSON object).
    jwks: Option<Value>,
    jwks_uri: Option<String>,
    scope: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    response_types: Vec<String>,
}

/// Metadata checked against what this server offers.
struct Accepted {
    name: String,
    scope: String,
    auth_method: AuthMethod,
    jwks: Option<String>,
    jwks_uri: Option<String>,
}

fn check(metadata: Metadata, allowed_scopes: &str) -> Result<Accepted, ApiError> {
    let refuse = |why: &str| Err(ApiError::InvalidClientMetadata(why.to_owned()));
    if !metadata.redirect_uris.is_empty() {
        return Err(ApiError::InvalidRedirectUri(
            "client-credentials clients have no redirect URIs".into(),
        ));
    }
    if !metadata.response_types.is_empty() {
        return refuse("client-credentials clients have no response types");
    }
    let grants = metadata
        .grant_types
        .unwrap_or_else(|| vec!["client_credentials".into()]);
    if grants.is_empty() || grants.iter().any(|g| !GRANT_TYPES.contains(&g.as_str())) {
        return refuse("grant_types may only be [\"client_credentials\"]");
    }
    let auth_method = match metadata.token_endpoint_auth_method.as_deref() {
        None => AuthMethod::default(),
        Some(name) => admin::auth_method_named(name).map_err(metadata_error)?,
    };
    // A certificate registration is not part of the metadata accepted here.
    if auth_method.credential() == Credential::Certificate {
        return refuse(
            "token_endpoint_auth_method must be client_secret_basic, client_secret_post \
             or private_key_jwt",
        );
    }
    if auth_method != AuthMethod::PrivateKeyJwt
        && (metadata.jwks.is_some() || metadata.jwks_uri.is_some())
    {
        return refuse("jwks and jwks_uri are for private_key_jwt clients");
    }
    let scope = metadata.scope.unwrap_or_default();
    if let Some(outside) = scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .find(|s| !allowed_scopes.split_whitespace().any(|a| a == *s))
    {
        return Err(ApiError::InvalidClientMetadata(format!(
            "scope {outside:?} may not be registered"
        )));
    }
    Ok(Accepted {
        name: metadata
            .client_name
            .unwrap_or_else(|| "registered client".into()),
        scope,
        auth_method,
        jwks: metadata.jwks.map(|jwks| jwks.to_string()),
        jwks_uri: metadata.jwks_uri,
    })
}

/// Handles `{base}/register` and `{base}/register/{client_id}`.
pub async fn handle<B>(state: &AppState, request: Request<B>) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let rest = request
        .uri()
        .path()
        .get(state.base_path.len() + "/register".len()..)
        .unwrap_or_default()
        .to_owned();
    match rest.strip_prefix('/') {
        None if request.method() == Method::POST => register(state, request).await,
        None => Err(ApiError::MethodNotAllowed("POST")),
        Some(id) if !id.is_empty() && !id.contains('/') => {
            let method = request.method().clone();
            if !matches!(method, Method::GET | Method::PUT | Method::DELETE) {
                return Err(ApiError::MethodNotAllowed("GET, PUT, DELETE"));
            }
            let actor = match registered_client(state, &request, id).await {
                Ok(actor) => actor,
                Err(refused) => return Ok(refused),
            };
            manage(state, request, method, id, &actor).await
        }
        Some(_) => Err(ApiError::NotFound),
    }
}

async fn register<B>(state: &AppState, request: Request<B>) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let actor = match authorize(state, &request, REGISTER_SCOPE).await {
        Ok(actor) => Actor::registration(
            &actor.actor_id,
            actor.request_id.as_deref().unwrap_or_default(),
            actor.peer_ip,
        ),
        Err(refused) => return Ok(refused),
    };
    let (parts, body) = request.into_parts();
    let body = read_limited(&state.body_limits, &parts, body).await?;
    let accepted = check(parse_body(&body)?, &state.registration.allowed_scopes)?;
    let token = generate_secret().map_err(admin::AdminError::from)?;
    let now = state.now();
    let created = admin::register_client(
        state.store.as_ref(),
        NewClient {
            name: accepted.name.clone(),
            allowed_scopes: accepted.scope.clone(),
            auth_method: accepted.auth_method,
            jwks: accepted.jwks,
            jwks_uri: accepted.jwks_uri,
            ..NewClient::default()
        },
        token.hash,
        &actor,
        now,
    )
    .await
    .map_err(metadata_error)?;
    let mut shown = metadata_view(state, &created.client);
    if created.client.auth_method.uses_secret() {
        shown["client_secret"] = json!(created.secret);
        shown["client_secret_expires_at"] = json!(0);
    }
    shown["registration_access_token"] = json!(token.plaintext);
    Ok(answer(StatusCode::CREATED, &shown))
}

/// Input the admin layer refuses is a metadata problem here.
fn metadata_error(e: admin::AdminError) -> ApiError {
    match e {
        admin::AdminError::Invalid(why) => ApiError::InvalidClientMetadata(why),
        other => other.into(),
    }
}

/// Checks the registration access token of `id`; the actor is the client.
async fn registered_client<B>(
    state: &AppState,
    request: &Request<B>,
    id: &str,
) -> Result<Actor, Response<Body>> {
    let refuse = || ApiError::from(invalid_token()).into_response();
    let presented =
        bearer_token(request.headers()).map_err(|e| ApiError::from(e).into_response())?;
    let stored = state
        .store
        .registration_token(id)
        .await
        .map_err(|e| ApiError::from(admin::AdminError::from(e)).into_response())?;
    match stored {
        Some(hash) if hash.ct_matches(&SecretHash::of(presented)) => {}
        _ => return Err(refuse()),
    }
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map_or("", |r| r.0.as_str());
    Ok(Actor::registration(
        id,
        request_id,
        peer_ip(request).map(|ip| ip.to_string()),
    ))
}

async fn manage<B>(
    state: &AppState,
    request: Request<B>,
    method: Method,
    id: &str,
    actor: &Actor,
) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let store = state.store.as_ref();
    let now = state.now();
    let (parts, body) = request.into_parts();
    let body = read_limited(&state.body_limits, &parts, body).await?;
    match method {
        Method::GET => {
            let client = store
                .get_client(id)
                .await
                .map_err(admin::AdminError::from)?
                .ok_or(ApiError::NoSuchClient)?;
            Ok(answer(StatusCode::OK, &metadata_view(state, &client)))
        }
        Method::PUT => {
            let metadata: Metadata = parse_body(&body)?;
            if metadata.client_id.as_deref() != Some(id) {
                return Err(OAuthError::invalid_request(
                    "client_id must be the registered client's",
                )
                .into());
            }
            let accepted = check(metadata, &state.registration.allowed_scopes)?;
            let stored = store
                .get_client(id)
                .await
                .map_err(admin::AdminError::from)?
                .ok_or(ApiError::NoSuchClient)?;
            // Its secret is shown only at registration: a client keeps its
            // kind of credential (a secret or its keys).
            if stored.auth_method.credential() != accepted.auth_method.credential() {
                return Err(ApiError::InvalidClientMetadata(format!(
                    "a {} client cannot become a {} client; register a new client",
                    stored.auth_method.name(),
                    accepted.auth_method.name()
                )));
            }
            let update = ClientUpdate {
                name: Some(accepted.name),
                allowed_scopes: Some(accepted.scope.clone()),
                default_scopes: Some(accepted.scope),
                auth_method: Some(accepted.auth_method),
                jwks: accepted.jwks,
                jwks_uri: accepted.jwks_uri,
                ..ClientUpdate::default()
            };
            let client = admin::update_client(store, id, update, actor, now)
                .await
                .map_err(metadata_error)?;
            state.clients.invalidate(id);
            Ok(answer(StatusCode::OK, &metadata_view(state, &client)))
        }
        _ => {
            admin::delete_client(store, id, actor, now).await?;
            state.clients.invalidate(id);
            Ok(json_response(
                StatusCode::NO_CONTENT,
                Bytes::new(),
                CachePolicy::NoStore,
            ))
        }
    }
}

/// A registered client's metadata (RFC 7591 section 3.2.1), never its
/// secret or registration access token.
fn metadata_view(state: &AppState, client: &Client) -> Value {
    let mut view = json!({
        "client_id": client.id,
        "client_id_issued_at": client.created_at,
        "client_name": client.name,
        "grant_types": GRANT_TYPES,
        "token_endpoint_auth_method": client.auth_method.name(),
        "scope": client.allowed_scopes.to_string(),
        "registration_client_uri": format!("{}/register/{}", state.policy.issuer, client.id),
    });
    if let Some(jwks) = &client.jwks {
        view["jwks"] = serde_json::from_str(jwks.json()).unwrap_or(Value::Null);
    }
    if let Some(uri) = &client.jwks_uri {
        view["jwks_uri"] = json!(uri);
    }
    view
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> &'static str {
        "read write"
    }

    fn meta(json: &str) -> Metadata {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn metadata_is_held_to_what_the_server_offers() {
        let ok = check(meta(r#"{"client_name": "a", "scope": "read"}"#), allowed()).unwrap();
        assert_eq!((ok.name.as_str(), ok.scope.as_str()), ("a", "read"));
        assert_eq!(ok.auth_method, AuthMethod::ClientSecretBasic);
        let post = r#"{"token_endpoint_auth_method": "client_secret_post", "unknown": 1}"#;
        assert_eq!(
            check(meta(post), allowed()).unwrap().auth_method,
            AuthMethod::ClientSecretPost
        );
        let keyed = r#"{"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://k"}"#;
        let keyed = check(meta(keyed), allowed()).unwrap();
        assert_eq!(keyed.auth_method, AuthMethod::PrivateKeyJwt);
        assert_eq!(keyed.jwks_uri.as_deref(), Some("https://k"));
        for bad in [
            r#"{"grant_types": ["authorization_code"]}"#,
            r#"{"grant_types": []}"#,
            r#"{"token_endpoint_auth_method": "none"}"#,
            r#"{"token_endpoint_auth_method": "tls_client_auth"}"#,
            r#"{"jwks_uri": "https://k"}"#,
            r#"{"scope": "read admin"}"#,
            r#"{"response_types": ["code"]}"#,
        ] {
            assert!(
                matches!(
                    check(meta(bad), allowed()),
                    Err(ApiError::InvalidClientMetadata(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            check(meta(r#"{"redirect_uris": ["https://x"]}"#), allowed()),
            Err(ApiError::InvalidRedirectUri(_))
        ));
    }
}
