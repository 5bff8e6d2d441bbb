//! Client administration used by the CLI, the admin API (and the dev demo
//! client): create, update, rotate the secret, enable/disable, delete,
//! revoke. Validates input before anything reaches the store; every change
//! is written together with its audit record (see [`crate::audit`]), which
//! goes to the log once committed.

use serde_json::{Map, Value, json};

use crate::audit::{self, Action, Actor, REDACTED};
use crate::domain::certificate::TlsClientAuth;
use crate::domain::client::{
    AuthMethod, Client, Credential, RandomError, RegisteredJwks, SecretHash, generate_client_id,
    generate_secret, is_valid_client_id,
};
use crate::domain::scope::ScopeSet;
use crate::store::{AuditedChange, ClientStore, Revocation, Store, StoreError};

/// Longest token lifetime a client may be given, in seconds.
pub const MAX_LIFETIME_SECS: u32 = 86_400;

/// Why an administrative operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No client with this id.
    #[error("no client with id {0}")]
    NotFound(String),
    /// The input is invalid; the message says which field and why.
    #[error("{0}")]
    Invalid(String),
    /// The system random source failed.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// Fields of a client to create.
#[derive(Debug, Default, Clone)]
pub struct NewClient {
    /// Id to use; generated when `None`.
    pub id: Option<String>,
    /// Human-readable name.
    pub name: String,
    /// Space-separated scopes the client may request.
    pub allowed_scopes: String,
    /// Space-separated default scopes; all allowed scopes when `None`.
    pub default_scopes: Option<String>,
    /// Audiences the client may request; the first is the default.
    pub audiences: Vec<String>,
    /// Token lifetime override in seconds.
    pub token_lifetime_secs: Option<u32>,
    /// Rate limit override in requests per second.
    pub rate_limit_rps: Option<u32>,
    /// An operator-chosen secret (development and tests only).
    pub imported_secret: Option<String>,
    /// How the client authenticates. With a certificate registration the
    /// method is the registration's (a secret method given gives way to it).
    pub auth_method: AuthMethod,
    /// Public keys (a JWK Set document), for `private_key_jwt`.
    pub jwks: Option<String>,
    /// Where the client publishes its public keys, for `private_key_jwt`.
    pub jwks_uri: Option<String>,
    /// The certificate registration (RFC 8705), for `tls_client_auth` and
    /// `self_signed_tls_client_auth`.
    pub tls_client_auth: Option<TlsClientAuth>,
    /// Token requests must carry a DPoP proof.
    pub require_dpop: bool,
}

/// A created client and its secret, which is not stored and never shown again.
#[derive(Debug)]
pub struct CreatedClient {
    /// The stored record.
    pub client: Client,
    /// The plaintext secret; empty for a `private_key_jwt` client, which
    /// has none.
    pub secret: String,
}

/// Changes to a client; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct ClientUpdate {
    /// New name.
    pub name: Option<String>,
    /// New allowed scopes (space-separated).
    pub allowed_scopes: Option<String>,
    /// New default scopes (space-separated).
    pub default_scopes: Option<String>,
    /// New audiences.
    pub audiences: Option<Vec<String>>,
    /// New lifetime override; `Some(None)` clears it.
    pub token_lifetime_secs: Option<Option<u32>>,
    /// New rate limit override; `Some(None)` clears it.
    pub rate_limit_rps: Option<Option<u32>>,
    /// New authentication method. Moving to `private_key_jwt` ends the
    /// client's secrets (`rotate-secret` issues a new one after a move back).
    pub auth_method: Option<AuthMethod>,
    /// New inline public keys (a JWK Set document); replaces any `jwks_uri`.
    pub jwks: Option<String>,
    /// New `jwks_uri`; replaces any inline keys.
    pub jwks_uri: Option<String>,
    /// New certificate registration; `Some(None)` goes back to the secret.
    pub tls_client_auth: Option<Option<TlsClientAuth>>,
    /// Whether token requests must carry a DPoP proof.
    pub require_dpop: Option<bool>,
}

/// Longest `jwks_uri` accepted.
pub const MAX_JWKS_URI_LEN: usize = 2_048;

fn parse_jwks(json: &str) -> Result<RegisteredJwks, AdminError> {
    let jwks = RegisteredJwks::parse(json).map_err(|e| invalid(format!("jwks: {e}")))?;
    if jwks.keys().is_empty() {
        return Err(invalid(
            "jwks: no usable signature key (Ed25519, P-256 or RSA of at least 2048 bits)",
        ));
    }
    Ok(jwks)
}

fn check_jwks_uri(uri: &str) -> Result<String, AdminError> {
    let parsed = url::Url::parse(uri).map_err(|_| invalid("jwks_uri must be an https:// URL"))?;
    if parsed.scheme() != "https"
        || parsed.host_str().is_none()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
        || parsed.fragment().is_some()
        || uri.len() > MAX_JWKS_URI_LEN
    {
        return Err(invalid(format!(
            "jwks_uri must be an https:// URL with a host, no credentials or fragment, \
             at most {MAX_JWKS_URI_LEN} characters"
        )));
    }
    Ok(uri.to_owned())
}

/// The method of a client that asks for `requested` and has `registration`:
/// a certificate registration decides it (a secret method gives way to it,
/// a key method is refused), and the certificate methods need one.
fn settled_method(
    requested: AuthMethod,
    registration: Option<&TlsClientAuth>,
) -> Result<AuthMethod, AdminError> {
    match registration {
        Some(tls) if requested.uses_secret() || requested == AuthMethod::of_certificate(tls) => {
            Ok(AuthMethod::of_certificate(tls))
        }
        Some(tls) => Err(invalid(format!(
            "a client registered with a certificate authenticates with {}, not {}",
            AuthMethod::of_certificate(tls).name(),
            requested.name()
        ))),
        None if requested.credential() == Credential::Certificate => Err(invalid(format!(
            "{} needs a certificate registration",
            requested.name()
        ))),
        None => Ok(requested),
    }
}

/// The method named `name` (its RFC 7591 `token_endpoint_auth_method`
/// name), for input that names it as a string.
pub fn auth_method_named(name: &str) -> Result<AuthMethod, AdminError> {
    AuthMethod::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = AuthMethod::ALL.iter().map(|m| m.name()).collect();
        invalid(format!(
            "token_endpoint_auth_method {name:?} is not one of {}",
            known.join(", ")
        ))
    })
}

/// Replaces the client's secrets with a random one nobody knows.
fn drop_secrets(client: &mut Client) -> Result<(), AdminError> {
    client.secret_hash = generate_secret()?.hash;
    client.previous_secret_hash = None;
    client.previous_secret_expires_at = None;
    client.secret_imported = false;
    Ok(())
}

fn invalid(msg: impl Into<String>) -> AdminError {
    AdminError::Invalid(msg.into())
}

fn parse_scopes(field: &str, value: &str) -> Result<ScopeSet, AdminError> {
    ScopeSet::parse(value).map_err(|_| invalid(format!("{field}: malformed scope list {value:?}")))
}

/// Checks the fields that create and update share.
fn check(client: &Client) -> Result<(), AdminError> {
    if client.name.trim().is_empty() || client.name.len() > 200 {
        return Err(invalid("name must be 1 to 200 characters"));
    }
    if !client.default_scopes.is_subset_of(&client.allowed_scopes) {
        return Err(invalid("default scopes must be among the allowed scopes"));
    }
    for audience in &client.allowed_audiences {
        if audience.is_empty()
            || audience.len() > 512
            || audience
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid(format!(
                "audience {audience:?} must be a URI without spaces"
            )));
        }
    }
    if client
        .token_lifetime_secs
        .is_some_and(|l| !(1..=MAX_LIFETIME_SECS).contains(&l))
    {
        return Err(invalid(format!(
            "lifetime must be 1 to {MAX_LIFETIME_SECS} seconds"
        )));
    }
    if client.rate_limit_rps == Some(0) {
        return Err(invalid("rate limit must be at least 1 request per second"));
    }
    if client.jwks.is_some() && client.jwks_uri.is_some() {
        return Err(invalid("give jwks or jwks_uri, not both"));
    }
    if client.auth_method == AuthMethod::PrivateKeyJwt
        && client.jwks.is_none()
        && client.jwks_uri.is_none()
    {
        return Err(invalid(
            "a private_key_jwt client needs its public keys: jwks or jwks_uri",
        ));
    }
    Ok(())
}

/// Creates a client with a generated (or, in development, imported) secret.
pub async fn create_client(
    store: &dyn Store,
    new: NewClient,
    actor: &Actor,
    now: i64,
) -> Result<CreatedClient, AdminError> {
    create(store, new, None, actor, now).await
}

/// Creates a client through dynamic registration (RFC 7591), with the hash
/// of its registration access token (RFC 7592).
pub async fn register_client(
    store: &dyn Store,
    new: NewClient,
    registration_token: SecretHash,
    actor: &Actor,
    now: i64,
) -> Result<CreatedClient, AdminError> {
    create(store, new, Some(registration_token), actor, now).await
}

async fn create(
    store: &dyn Store,
    new: NewClient,
    registration_token: Option<SecretHash>,
    actor: &Actor,
    now: i64,
) -> Result<CreatedClient, AdminError> {
    let id = match new.id {
        Some(id) if is_valid_client_id(&id) => id,
        Some(id) => {
            return Err(invalid(format!(
                "client id {id:?} must be 1-128 characters of A-Z a-z 0-9 - _ . ~"
            )));
        }
        None => generate_client_id()?,
    };
    let auth_method = settled_method(new.auth_method, new.tls_client_auth.as_ref())?;
    if auth_method == AuthMethod::PrivateKeyJwt && new.imported_secret.is_some() {
        return Err(invalid("a private_key_jwt client has no secret to import"));
    }
    let (secret, secret_hash, secret_imported) = match new.imported_secret {
        Some(secret) if secret.is_empty() || secret.len() > 256 => {
            return Err(invalid("an imported secret must be 1 to 256 bytes"));
        }
        Some(secret) => {
            let hash = SecretHash::of(&secret);
            (secret, hash, true)
        }
        None => {
            let generated = generate_secret()?;
            let shown = if auth_method.uses_secret() {
                generated.plaintext
            } else {
                String::new()
            };
            (shown, generated.hash, false)
        }
    };
    let allowed_scopes = parse_scopes("scopes", &new.allowed_scopes)?;
    let default_scopes = match new.default_scopes {
        Some(d) => parse_scopes("default scopes", &d)?,
        None => allowed_scopes.clone(),
    };
    let client = Client {
        secret_imported,
        allowed_scopes,
        default_scopes,
        allowed_audiences: new.audiences,
        token_lifetime_secs: new.token_lifetime_secs,
        rate_limit_rps: new.rate_limit_rps,
        auth_method,
        jwks: new.jwks.as_deref().map(parse_jwks).transpose()?,
        jwks_uri: new.jwks_uri.as_deref().map(check_jwks_uri).transpose()?,
        tls_client_auth: new.tls_client_auth,
        require_dpop: new.require_dpop,
        ..Client::new(id, new.name, secret_hash, now)
    };
    check(&client)?;
    let (action, change) = match registration_token {
        None => (
            Action::ClientCreate,
            AuditedChange::InsertClient(client.clone()),
        ),
        Some(token) => (
            Action::ClientRegister,
            AuditedChange::RegisterClient(client.clone(), token),
        ),
    };
    let entry = actor.entry(action, &client.id, client_changes(None, Some(&client)), now);
    store.write_audited(&change, &entry).await?;
    audit::log(&entry);
    Ok(CreatedClient { client, secret })
}

async fn load(store: &dyn ClientStore, id: &str) -> Result<Client, AdminError> {
    store
        .get_client(id)
        .await?
        .ok_or_else(|| AdminError::NotFound(id.to_owned()))
}

/// Writes `after` over `before` with the record of `action`.
async fn save(
    store: &dyn Store,
    before: &Client,
    after: &Client,
    actor: &Actor,
    action: Action,
    now: i64,
) -> Result<(), AdminError> {
    let entry = actor.entry(
        action,
        &after.id,
        client_changes(Some(before), Some(after)),
        now,
    );
    if store
        .write_audited(&AuditedChange::UpdateClient(after.clone()), &entry)
        .await?
    {
        audit::log(&entry);
        Ok(())
    } else {
        Err(AdminError::NotFound(after.id.clone()))
    }
}

/// Applies an update.
pub async fn update_client(
    store: &dyn Store,
    id: &str,
    update: ClientUpdate,
    actor: &Actor,
    now: i64,
) -> Result<Client, AdminError> {
    let before = load(store, id).await?;
    let mut client = before.clone();
    if let Some(name) = update.name {
        client.name = name;
    }
    if let Some(scopes) = update.allowed_scopes {
        client.allowed_scopes = parse_scopes("scopes", &scopes)?;
    }
    if let Some(scopes) = update.default_scopes {
        client.default_scopes = parse_scopes("default scopes", &scopes)?;
    }
    if let Some(audiences) = update.audiences {
        client.allowed_audiences = audiences;
    }
    if let Some(lifetime) = update.token_lifetime_secs {
        client.token_lifetime_secs = lifetime;
    }
    if let Some(rps) = update.rate_limit_rps {
        client.rate_limit_rps = rps;
    }
    if let Some(json) = update.jwks {
        client.jwks = Some(parse_jwks(&json)?);
        client.jwks_uri = None;
    }
    if let Some(uri) = update.jwks_uri {
        client.jwks_uri = Some(check_jwks_uri(&uri)?);
        client.jwks = None;
    }
    if let Some(tls) = update.tls_client_auth {
        client.tls_client_auth = tls;
    }
    if let Some(require) = update.require_dpop {
        client.require_dpop = require;
    }
    // Without a method given, a certificate client keeps following its
    // registration, and goes back to its secret when that is dropped.
    let requested = update
        .auth_method
        .unwrap_or(match client.auth_method.credential() {
            Credential::Certificate => AuthMethod::ClientSecretBasic,
            _ => client.auth_method,
        });
    let method = settled_method(requested, client.tls_client_auth.as_ref())?;
    if method == AuthMethod::PrivateKeyJwt && client.auth_method != method {
        drop_secrets(&mut client)?;
    }
    client.auth_method = method;
    client.updated_at = now;
    check(&client)?;
    save(store, &before, &client, actor, Action::ClientUpdate, now).await?;
    Ok(client)
}

/// Issues a new secret. The old one keeps working for `grace_secs` (0 ends it
/// now), so callers can roll over without downtime.
pub async fn rotate_secret(
    store: &dyn Store,
    id: &str,
    grace_secs: u32,
    actor: &Actor,
    now: i64,
) -> Result<(Client, String), AdminError> {
    let before = load(store, id).await?;
    if !before.auth_method.uses_secret() {
        return Err(invalid(format!(
            "a {} client has no secret; change its auth method first",
            before.auth_method.name()
        )));
    }
    let mut client = before.clone();
    let generated = generate_secret()?;
    if grace_secs > 0 {
        client.previous_secret_hash = Some(client.secret_hash);
        client.previous_secret_expires_at = Some(now + i64::from(grace_secs));
    } else {
        client.previous_secret_hash = None;
        client.previous_secret_expires_at = None;
    }
    client.secret_hash = generated.hash;
    client.secret_imported = false;
    client.updated_at = now;
    save(
        store,
        &before,
        &client,
        actor,
        Action::ClientRotateSecret,
        now,
    )
    .await?;
    Ok((client, generated.plaintext))
}

/// Enables or disables a client.
///
/// Disabling ends every token issued so far (`tokens_valid_after = now`).
/// Instances learn of the change at their next change-feed poll
/// (`cache.change_poll_interval_ms`, 1 s by default) and until then keep
/// issuing tokens, stamped after that moment.
/// Enabling a disabled client therefore moves `tokens_valid_after` to `now`
/// as well, so that neither those tokens nor any other issued before the
/// enable come back to life. Validation accepts a token only when its `iat`
/// is after `tokens_valid_after`, in whole seconds: a token issued in the
/// same second as the enable is refused too, and the client gets a working
/// token from the next second on. Enabling a client that is already enabled
/// leaves its tokens alone.
pub async fn set_enabled(
    store: &dyn Store,
    id: &str,
    enabled: bool,
    actor: &Actor,
    now: i64,
) -> Result<Client, AdminError> {
    let before = load(store, id).await?;
    let mut client = before.clone();
    if !enabled || !client.enabled {
        client.tokens_valid_after = now;
    }
    client.enabled = enabled;
    client.updated_at = now;
    let action = if enabled {
        Action::ClientEnable
    } else {
        Action::ClientDisable
    };
    save(store, &before, &client, actor, action, now).await?;
    Ok(client)
}

/// Revokes one token by `jti`. The token's expiry is unknown here, so the
/// revocation is kept for the longest lifetime a token can have.
pub async fn revoke_jti(
    store: &dyn Store,
    jti: &str,
    actor: &Actor,
    now: i64,
) -> Result<(), AdminError> {
    if jti.is_empty() || jti.len() > 128 || jti.chars().any(char::is_control) {
        return Err(invalid("jti must be 1 to 128 printable characters"));
    }
    let revocation = Revocation {
        jti: jti.to_owned(),
        client_id: String::new(),
        exp: now + i64::from(MAX_LIFETIME_SECS),
        revoked_at: now,
    };
    let entry = actor.entry(
        Action::TokenRevoke,
        jti,
        json!({ "exp": { "from": null, "to": revocation.exp } }),
        now,
    );
    store
        .write_audited(&AuditedChange::Revoke(revocation), &entry)
        .await?;
    audit::log(&entry);
    Ok(())
}

/// Ends every token issued to a client until now (it keeps its secret and
/// can get new tokens).
pub async fn revoke_client_tokens(
    store: &dyn Store,
    id: &str,
    actor: &Actor,
    now: i64,
) -> Result<Client, AdminError> {
    let before = load(store, id).await?;
    let mut client = before.clone();
    client.tokens_valid_after = now;
    client.updated_at = now;
    save(
        store,
        &before,
        &client,
        actor,
        Action::ClientTokensRevoke,
        now,
    )
    .await?;
    Ok(client)
}

/// Deletes a client.
pub async fn delete_client(
    store: &dyn Store,
    id: &str,
    actor: &Actor,
    now: i64,
) -> Result<(), AdminError> {
    let before = load(store, id).await?;
    let entry = actor.entry(
        Action::ClientDelete,
        id,
        client_changes(Some(&before), None),
        now,
    );
    if store
        .write_audited(&AuditedChange::DeleteClient(id.to_owned()), &entry)
        .await?
    {
        audit::log(&entry);
        Ok(())
    } else {
        Err(AdminError::NotFound(id.to_owned()))
    }
}

/// The fields that differ between `before` and `after` (`None`: the client
/// does not exist on that side), as `{"field": {"from": .., "to": ..}}`.
/// Secret hashes are never shown: a changed one reads [`REDACTED`].
pub fn client_changes(before: Option<&Client>, after: Option<&Client>) -> Value {
    let fields = |c: Option<&Client>| match c.map(client_view) {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let (old, new) = (fields(before), fields(after));
    let mut changes = Map::new();
    for key in old.keys().chain(new.keys()) {
        let (from, to) = (
            old.get(key).unwrap_or(&Value::Null),
            new.get(key).unwrap_or(&Value::Null),
        );
        if from != to && !changes.contains_key(key) {
            changes.insert(key.clone(), json!({ "from": from, "to": to }));
        }
    }
    let secret = |c: Option<&Client>| c.map(|c| c.secret_hash.0);
    let previous = |c: Option<&Client>| c.and_then(|c| c.previous_secret_hash.map(|h| h.0));
    if secret(before) != secret(after) {
        changes.insert("secret_hash".into(), Value::String(REDACTED.into()));
    }
    if previous(before) != previous(after) {
        changes.insert(
            "previous_secret_hash".into(),
            Value::String(REDACTED.into()),
        );
    }
    Value::Object(changes)
}

/// A client as shown to operators: everything but the secret hashes.
pub fn client_view(client: &Client) -> Value {
    json!({
        "client_id": client.id,
        "name": client.name,
        "enabled": client.enabled,
        "allowed_scopes": client.allowed_scopes.to_string(),
        "default_scopes": client.default_scopes.to_string(),
        "allowed_audiences": client.allowed_audiences,
        "token_lifetime_secs": client.token_lifetime_secs,
        "rate_limit_rps": client.rate_limit_rps,
        "secret_imported": client.secret_imported,
        "previous_secret_expires_at": client.previous_secret_hash.and(client.previous_secret_expires_at),
        "token_endpoint_auth_method": client.auth_method.name(),
        "jwks": client.jwks.as_ref().and_then(|jwks| serde_json::from_str::<Value>(jwks.json()).ok()),
        "jwks_uri": client.jwks_uri,
        "tokens_valid_after": client.tokens_valid_after,
        "tls_client_auth": client.tls_client_auth.as_ref().map(tls_view),
        "require_dpop": client.require_dpop,
        "created_at": client.created_at,
        "updated_at": client.updated_at,
    })
}

/// A certificate registration as shown: the registered value under its
/// kind, e.g. `{"san_dns": "svc.example.com"}` (the method is the client's
/// `token_endpoint_auth_method`).
fn tls_view(tls: &TlsClientAuth) -> Value {
    let mut view = serde_json::Map::new();
    view.insert(tls.kind().into(), tls.value().into());
    Value::Object(view)
}

pub mod federated;

#[cfg(test)]
mod tests;
