//! The admin API under `{base}/admin/`: what the `client`, `token`,
//! `keys` and `federation` commands do, over HTTPS and JSON. Callers present one of our own
//! access tokens carrying [`ADMIN_SCOPE`], validated locally like any
//! token; every change is written with its audit record naming the admin
//! client, the request id and the peer address. The routes are the table
//! [`ROUTES`]; `admin/openapi.json` describes the same table (a test holds
//! the two together).

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::body::read_limited;
use super::error::ApiError;
use super::response::{Body, CachePolicy, json};
use super::validate::{bearer_token, invalid_token};
use super::{LoggedClientId, LoggedReason, RequestId, peer_ip};
use crate::admin::{self, AdminError, ClientUpdate, NewClient};
use crate::audit::Actor;
use crate::domain::client::AuthMethod;
use crate::domain::error::OAuthError;
use crate::domain::scope::ScopeSet;
use crate::keys::lifecycle::KeyRecord;
use crate::state::AppState;

/// The scope an access token needs for the admin API.
pub const ADMIN_SCOPE: &str = "auth-server:admin";

/// The OpenAPI 3.1 description of the admin API, served at
/// `{base}/admin/openapi.json`.
pub const OPENAPI: &str = include_str!("admin/openapi.json");

/// Most clients one list page holds.
pub const MAX_PAGE: usize = 1_000;

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A page of clients, ordered by id.
    ListClients,
    /// A new client; its secret is in the answer, once.
    CreateClient,
    /// One client.
    ShowClient,
    /// Changes some of a client's settings.
    UpdateClient,
    /// Removes a client.
    DeleteClient,
    /// A new secret; the old one works for a grace period.
    RotateSecret,
    /// Refuses new tokens and ends the client's tokens.
    DisableClient,
    /// Lets the client get tokens again.
    EnableClient,
    /// Revokes one token by `jti`, or every token of a client.
    RevokeTokens,
    /// The signing keys' records.
    ListKeys,
    /// Publishes a new next key (or, with `now`, replaces the current one).
    RotateKeys,
    /// A client's federated subjects.
    ListFederatedSubjects,
    /// Adds a federated subject to a client.
    AddFederatedSubject,
    /// Removes a federated subject from a client.
    RemoveFederatedSubject,
    /// The trusted issuers' key state on this instance.
    ListIssuers,
    /// Fetches a trusted issuer's keys on this instance now.
    RefreshIssuer,
    /// This API's OpenAPI document.
    OpenApi,
}

/// Every admin route: method, path under `{base}/admin` (`{client_id}` is
/// one path segment), operation.
pub const ROUTES: &[(&str, &str, Operation)] = &[
    ("GET", "/clients", Operation::ListClients),
    ("POST", "/clients", Operation::CreateClient),
    ("GET", "/clients/{client_id}", Operation::ShowClient),
    ("PATCH", "/clients/{client_id}", Operation::UpdateClient),
    ("DELETE", "/clients/{client_id}", Operation::DeleteClient),
    (
        "POST",
        "/clients/{client_id}/rotate-secret",
        Operation::RotateSecret,
    ),
    (
        "POST",
        "/clients/{client_id}/disable",
        Operation::DisableClient,
    ),
    (
        "POST",
        "/clients/{client_id}/enable",
        Operation::EnableClient,
    ),
    (
        "GET",
        "/clients/{client_id}/federated-subjects",
        Operation::ListFederatedSubjects,
    ),
    (
        "POST",
        "/clients/{client_id}/federated-subjects",
        Operation::AddFederatedSubject,
    ),
    (
        "POST",
        "/clients/{client_id}/federated-subjects/remove",
        Operation::RemoveFederatedSubject,
    ),
    ("GET", "/federation/issuers", Operation::ListIssuers),
    ("POST", "/federation/refresh", Operation::RefreshIssuer),
    ("POST", "/tokens/revoke", Operation::RevokeTokens),
    ("GET", "/keys", Operation::ListKeys),
    ("POST", "/keys/rotate", Operation::RotateKeys),
    ("GET", "/openapi.json", Operation::OpenApi),
];

/// The `Allow` value of a path template: its methods in [`ROUTES`].
fn allow(template: &str) -> &'static str {
    match template {
        "/clients" | "/clients/{client_id}/federated-subjects" => "GET, POST",
        "/clients/{client_id}" => "GET, PATCH, DELETE",
        "/keys" | "/openapi.json" | "/federation/issuers" => "GET",
        _ => "POST",
    }
}

/// Whether `path` fits `template`; the `{client_id}` segment if it has one.
fn fits(template: &str, path: &str) -> Option<Option<String>> {
    let mut id = None;
    let mut segments = path.split('/');
    for want in template.split('/') {
        let got = segments.next()?;
        if want == "{client_id}" {
            if got.is_empty() {
                return None;
            }
            id = Some(got.to_owned());
        } else if want != got {
            return None;
        }
    }
    segments.next().is_none().then_some(id)
}

/// Matches `method` and `path` (below `{base}/admin`) against [`ROUTES`].
pub fn route(method: &Method, path: &str) -> Result<(Operation, Option<String>), ApiError> {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    let mut allowed = None;
    for (m, template, operation) in ROUTES {
        if let Some(id) = fits(template, path) {
            if *m == method {
                return Ok((*operation, id));
            }
            allowed = Some(allow(template));
        }
    }
    Err(allowed.map_or(ApiError::NotFound, ApiError::MethodNotAllowed))
}

/// Handles a request whose path starts with `{base}/admin/`.
pub async fn handle<B>(state: &AppState, request: Request<B>) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let prefix_len = state.base_path.len() + "/admin".len();
    let path = request.uri().path().get(prefix_len..).unwrap_or_default();
    let (operation, id) = route(request.method(), path)?;
    if operation == Operation::OpenApi {
        return Ok(json(StatusCode::OK, OPENAPI, CachePolicy::NoStore));
    }
    let actor = match authorize(state, &request, ADMIN_SCOPE).await {
        Ok(actor) => actor,
        Err(refused) => return Ok(refused),
    };
    let query = request.uri().query().unwrap_or_default().to_owned();
    let (parts, body) = request.into_parts();
    let body = read_limited(&state.body_limits, &parts, body).await?;
    if !body.is_empty() && !is_json(&parts.headers) {
        return Err(OAuthError::invalid_request("the body must be application/json").into());
    }
    let ctx = Call {
        state,
        actor: &actor,
        id: id.as_deref().unwrap_or_default(),
        body: &body,
        now: state.now(),
    };
    let mut response = ctx.run(operation, &query).await?;
    response
        .extensions_mut()
        .insert(LoggedClientId(actor.actor_id.clone()));
    Ok(response)
}

/// Checks the bearer token: a valid token of ours carrying `scope`. The
/// refusal is the response to send: 401 without a good token, 403
/// `insufficient_scope` without the scope.
pub async fn authorize<B>(
    state: &AppState,
    request: &Request<B>,
    scope: &str,
) -> Result<Actor, Response<Body>> {
    let refuse = |e: OAuthError| ApiError::from(e).into_response();
    let token = bearer_token(request.headers()).map_err(refuse)?;
    let validated = match state.validate_token(token).await {
        Ok(validated) => validated,
        Err(rejection) => {
            let mut response = refuse(invalid_token());
            response
                .extensions_mut()
                .insert(LoggedReason(rejection.name()));
            return Err(response);
        }
    };
    let claims = &validated.claims;
    let granted = ScopeSet::parse(claims.scope.as_deref().unwrap_or("")).unwrap_or_default();
    if !granted.contains(scope) {
        let mut response = refuse(OAuthError::InsufficientScope {
            required: scope.to_owned(),
        });
        response
            .extensions_mut()
            .insert(LoggedClientId(claims.client_id.clone()));
        return Err(response);
    }
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map_or("", |r| r.0.as_str());
    Ok(Actor::admin_api(
        &claims.client_id,
        request_id,
        peer_ip(request).map(|ip| ip.to_string()),
    ))
}

fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// Parses a JSON body (an empty one reads as `{}`).
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| OAuthError::InvalidRequest(format!("malformed JSON body: {e}").into()).into())
}

/// A JSON answer with `no-store`.
pub fn answer(status: StatusCode, value: &Value) -> Response<Body> {
    json(status, value.to_string().into_bytes(), CachePolicy::NoStore)
}

/// `Some(v)` for a present field, also `null`, so that `null` clears.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// `POST /clients`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    client_id: Option<String>,
    name: String,
    #[serde(default)]
    allowed_scopes: String,
    default_scopes: Option<String>,
    #[serde(default)]
    allowed_audiences: Vec<String>,
    token_lifetime_secs: Option<u32>,
    rate_limit_rps: Option<u32>,
    #[serde(default)]
    require_dpop: bool,
    token_endpoint_auth_method: Option<String>,
    /// The JWK Set itself (a JSON object), for `private_key_jwt`.
    jwks: Option<Value>,
    jwks_uri: Option<String>,
}

/// `PATCH /clients/{client_id}`: absent fields stay, `null` clears.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    name: Option<String>,
    allowed_scopes: Option<String>,
    default_scopes: Option<String>,
    allowed_audiences: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    token_lifetime_secs: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    rate_limit_rps: Option<Option<u32>>,
    require_dpop: Option<bool>,
    token_endpoint_auth_method: Option<String>,
    /// The JWK Set itself (a JSON object); replaces any `jwks_uri`.
    jwks: Option<Value>,
    /// Replaces any inline `jwks`.
    jwks_uri: Option<String>,
}

/// `POST /clients/{client_id}/rotate-secret`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateSecretBody {
    #[serde(default = "default_grace")]
    grace_secs: u32,
}

fn default_grace() -> u32 {
    86_400
}

/// `POST /tokens/revoke`: exactly one of the two.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    jti: Option<String>,
    client_id: Option<String>,
}

/// `POST /keys/rotate`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateKeysBody {
    #[serde(default)]
    now: bool,
}

/// One authorized admin call.
struct Call<'a> {
    state: &'a AppState,
    actor: &'a Actor,
    id: &'a str,
    body: &'a [u8],
    now: i64,
}

impl Call<'_> {
    async fn run(&self, operation: Operation, query: &str) -> Result<Response<Body>, ApiError> {
        let store = self.state.store.as_ref();
        let (actor, id, now) = (self.actor, self.id, self.now);
        let view = |client: &crate::domain::client::Client| admin::client_view(client);
        let client = match operation {
            Operation::ListClients => return self.list(query).await,
            Operation::OpenApi => return Ok(json(StatusCode::OK, OPENAPI, CachePolicy::NoStore)),
            Operation::ListKeys => return self.list_keys().await,
            Operation::RotateKeys => return self.rotate_keys().await,
            Operation::RevokeTokens => return self.revoke().await,
            Operation::ListFederatedSubjects
            | Operation::AddFederatedSubject
            | Operation::RemoveFederatedSubject
            | Operation::ListIssuers
            | Operation::RefreshIssuer => return self.federation(operation).await,
            Operation::CreateClient => {
                let body: CreateBody = parse_body(self.body)?;
                let auth_method = match &body.token_endpoint_auth_method {
                    Some(name) => admin::auth_method_named(name)?,
                    None => AuthMethod::default(),
                };
                let created = admin::create_client(
                    store,
                    NewClient {
                        id: body.client_id,
                        name: body.name,
                        allowed_scopes: body.allowed_scopes,
                        default_scopes: body.default_scopes,
                        audiences: body.allowed_audiences,
                        token_lifetime_secs: body.token_lifetime_secs,
                        rate_limit_rps: body.rate_limit_rps,
                        require_dpop: body.require_dpop,
                        auth_method,
                        jwks: body.jwks.map(|jwks| jwks.to_string()),
                        jwks_uri: body.jwks_uri,
                        ..NewClient::default()
                    },
                    actor,
                    now,
                )
                .await?;
                let mut shown = view(&created.client);
                if created.client.auth_method.uses_secret() {
                    shown["client_secret"] = Value::String(created.secret);
                }
                return Ok(answer(StatusCode::CREATED, &shown));
            }
            Operation::ShowClient => store
                .get_client(id)
                .await
                .map_err(AdminError::from)?
                .ok_or(ApiError::NoSuchClient)?,
            Operation::UpdateClient => {
                let body: UpdateBody = parse_body(self.body)?;
                let update = ClientUpdate {
                    name: body.name,
                    allowed_scopes: body.allowed_scopes,
                    default_scopes: body.default_scopes,
                    audiences: body.allowed_audiences,
                    token_lifetime_secs: body.token_lifetime_secs,
                    rate_limit_rps: body.rate_limit_rps,
                    require_dpop: body.require_dpop,
                    auth_method: body
                        .token_endpoint_auth_method
                        .as_deref()
                        .map(admin::auth_method_named)
                        .transpose()?,
                    jwks: body.jwks.map(|jwks| jwks.to_string()),
                    jwks_uri: body.jwks_uri,
                    ..ClientUpdate::default()
                };
                admin::update_client(store, id, update, actor, now).await?
            }
            Operation::DeleteClient => {
                admin::delete_client(store, id, actor, now).await?;
                self.state.clients.invalidate(id);
                return Ok(answer(StatusCode::OK, &json!({ "deleted": id })));
            }
            Operation::RotateSecret => {
                let body: RotateSecretBody = parse_body(self.body)?;
                let (client, secret) =
                    admin::rotate_secret(store, id, body.grace_secs, actor, now).await?;
                self.state.clients.invalidate(id);
                let mut shown = view(&client);
                shown["client_secret"] = Value::String(secret);
                return Ok(answer(StatusCode::OK, &shown));
            }
            Operation::DisableClient | Operation::EnableClient => {
                let enable = operation == Operation::EnableClient;
                admin::set_enabled(store, id, enable, actor, now).await?
            }
        };
        // This instance sees the change at once; the others at their next
        // change-feed poll.
        self.state.clients.invalidate(&client.id);
        Ok(answer(StatusCode::OK, &view(&client)))
    }

    async fn list(&self, query: &str) -> Result<Response<Body>, ApiError> {
        let mut limit = 100;
        let mut after = String::new();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "limit" => {
                    limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|l| (1..=MAX_PAGE).contains(l))
                        .ok_or_else(|| {
                            OAuthError::InvalidRequest(
                                format!("limit must be 1 to {MAX_PAGE}").into(),
                            )
                        })?;
                }
                "after" => after = value.into_owned(),
                _ => {
                    return Err(OAuthError::invalid_request("unknown query parameter").into());
                }
            }
        }
        let clients = self
            .state
            .store
            .list_clients()
            .await
            .map_err(AdminError::from)?;
        let mut page = clients
            .iter()
            .filter(|c| after.is_empty() || c.id.as_str() > after.as_str());
        let shown: Vec<Value> = page.by_ref().take(limit).map(admin::client_view).collect();
        let next = if page.next().is_some() {
            shown.last().map(|c| c["client_id"].clone())
        } else {
            None
        };
        Ok(answer(
            StatusCode::OK,
            &json!({ "clients": shown, "next_after": next }),
        ))
    }

    async fn revoke(&self) -> Result<Response<Body>, ApiError> {
        let body: RevokeBody = parse_body(self.body)?;
        let store = self.state.store.as_ref();
        match (body.jti, body.client_id) {
            (Some(jti), None) => {
                admin::revoke_jti(store, &jti, self.actor, self.now).await?;
                let exp = self.now + i64::from(admin::MAX_LIFETIME_SECS);
                self.state.validator.revocations().insert(jti.clone(), exp);
                Ok(answer(StatusCode::OK, &json!({ "revoked_jti": jti })))
            }
            (None, Some(id)) => {
                let client = admin::revoke_client_tokens(store, &id, self.actor, self.now).await?;
                self.state.clients.invalidate(&id);
                Ok(answer(
                    StatusCode::OK,
                    &json!({
                        "client_id": client.id,
                        "tokens_valid_after": client.tokens_valid_after,
                    }),
                ))
            }
            _ => Err(OAuthError::invalid_request("give exactly one of jti and client_id").into()),
        }
    }

    fn ring(&self) -> Result<&crate::keyring::KeyRing, ApiError> {
        self.state.key_ring.as_deref().ok_or_else(|| {
            AdminError::Invalid("token.algorithm is HS256: no signing keys are stored".into())
                .into()
        })
    }

    async fn list_keys(&self) -> Result<Response<Body>, ApiError> {
        let records = self.ring()?.records().await?;
        let keys: Vec<Value> = records.iter().map(key_view).collect();
        Ok(answer(StatusCode::OK, &json!({ "keys": keys })))
    }

    async fn rotate_keys(&self) -> Result<Response<Body>, ApiError> {
        let body: RotateKeysBody = parse_body(self.body)?;
        let ring = self.ring()?;
        let record = if body.now {
            ring.rotate_now(self.actor, self.now).await?
        } else {
            ring.rotate(self.actor, self.now).await?
        };
        Ok(answer(StatusCode::OK, &key_view(&record)))
    }
}

/// A signing key's record as shown (never key material).
fn key_view(r: &KeyRecord) -> Value {
    json!({
        "kid": r.kid,
        "alg": r.alg.name(),
        "state": r.state.name(),
        "created_at": r.created_at,
        "promote_at": r.promote_at,
        "activated_at": r.activated_at,
        "demoted_at": r.demoted_at,
        "retire_at": r.retire_at,
        "retired_at": r.retired_at,
    })
}

mod federation;
#[cfg(test)]
mod tests;
