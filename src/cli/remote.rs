//! `auth-server client … --server URL`: the client commands through a
//! running server's admin API instead of the store. The command gets an
//! access token with the scope `auth-server:admin` from the server's token
//! endpoint, as the client named by `ADMIN_CLIENT_ID` and
//! `ADMIN_CLIENT_SECRET` in the environment, then makes one HTTPS request
//! per call. The server's certificate must chain to the system's roots or
//! to `--ca-cert`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use clap::Args;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rustls_pki_types::ServerName;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::http::admin::ADMIN_SCOPE;

/// Where the client commands go instead of the store.
#[derive(Debug, Clone, Args)]
pub struct RemoteArgs {
    /// The server's issuer URL (`https://host:port/auth-server/v1`): send
    /// the command to its admin API instead of opening the store. The admin
    /// client's credentials come from ADMIN_CLIENT_ID and ADMIN_CLIENT_SECRET.
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// A PEM file of certificates to trust for `--server` (a private CA or
    /// the development certificate), instead of the system's roots.
    #[arg(long, global = true, value_name = "PATH")]
    pub ca_cert: Option<PathBuf>,
}

/// The environment variable holding the admin client's id.
pub const CLIENT_ID_VAR: &str = "ADMIN_CLIENT_ID";
/// The environment variable holding the admin client's secret.
pub const CLIENT_SECRET_VAR: &str = "ADMIN_CLIENT_SECRET";

/// How long one request may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer read.
const MAX_ANSWER_BYTES: usize = 16 << 20;

/// Why a remote command failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The URL is not an `https://` URL with a host.
    #[error("--server {0:?}: give the issuer URL, https://host[:port][/base path]")]
    Url(String),
    /// The admin client's credentials are not in the environment.
    #[error("{CLIENT_ID_VAR} and {CLIENT_SECRET_VAR} must name the admin client")]
    Credentials,
    /// The trusted certificates could not be read.
    #[error("--ca-cert: {0}")]
    Certificates(String),
    /// The server could not be reached or the exchange broke.
    #[error("{url}: {reason}")]
    Transport {
        /// What was asked.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// The server refused the call.
    #[error("{status}: {error}: {description}")]
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// The error code.
        error: String,
        /// What the server said.
        description: String,
    },
}

impl RemoteError {
    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A server's admin API, with a token for it.
pub struct AdminApi {
    host: String,
    port: u16,
    base_path: String,
    tls: TlsConnector,
    token: String,
}

impl AdminApi {
    /// Gets an admin token from the server at `server` for the client in the
    /// environment (`env` reads a variable).
    pub async fn connect(
        args: &RemoteArgs,
        server: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, RemoteError> {
        let url = url::Url::parse(server).map_err(|_| RemoteError::Url(server.to_owned()))?;
        let host = url
            .host_str()
            .filter(|_| url.scheme() == "https")
            .ok_or_else(|| RemoteError::Url(server.to_owned()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = url.port().unwrap_or(443);
        let base_path = url.path().trim_end_matches('/').to_owned();
        let tls = connector(args.ca_cert.as_deref())?;
        let (Some(id), Some(secret)) = (env(CLIENT_ID_VAR), env(CLIENT_SECRET_VAR)) else {
            return Err(RemoteError::Credentials);
        };
        let mut api = Self {
            host,
            port,
            base_path,
            tls,
            token: String::new(),
        };
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            encode(&id),
            encode(&secret)
        ));
        let form = format!(
            "grant_type=client_credentials&scope={}",
            encode(ADMIN_SCOPE)
        );
        let answer = api
            .send(
                Method::POST,
                "/oauth/token",
                &format!("Basic {basic}"),
                "application/x-www-form-urlencoded",
                form.into_bytes(),
            )
            .await?;
        api.token = answer["access_token"]
            .as_str()
            .ok_or_else(|| RemoteError::Transport {
                url: api.url("/oauth/token"),
                reason: "no access_token in the answer".into(),
            })?
            .to_owned();
        Ok(api)
    }

    fn url(&self, path: &str) -> String {
        format!(
            "https://{}:{}{}{path}",
            self.host, self.port, self.base_path
        )
    }

    /// Calls the admin API: `path` is below `{base}/admin`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, RemoteError> {
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let authorization = format!("Bearer {}", self.token);
        self.send(
            method,
            &format!("/admin{path}"),
            &authorization,
            "application/json",
            body,
        )
        .await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        authorization: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Value, RemoteError> {
        let url = self.url(path);
        let transport = |reason: String| RemoteError::Transport {
            url: url.clone(),
            reason,
        };
        let exchange = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| transport(e.to_string()))?;
            let name =
                ServerName::try_from(self.host.clone()).map_err(|e| transport(e.to_string()))?;
            let stream = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| transport(e.to_string()))?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| transport(e.to_string()))?;
            tokio::spawn(connection);
            let request = Request::builder()
                .method(method)
                .uri(format!("{}{path}", self.base_path))
                .header(header::HOST, format!("{}:{}", self.host, self.port))
                .header(header::AUTHORIZATION, authorization)
                .header(header::CONTENT_TYPE, content_type)
                .header(header::ACCEPT, "application/json")
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| transport(e.to_string()))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| transport(e.to_string()))?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| transport(e.to_string()))?
                .to_bytes();
            Ok::<_, RemoteError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| transport(format!("no answer within {} s", TIMEOUT.as_secs())))??;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        let text = |key: &str| value[key].as_str().unwrap_or_default().to_owned();
        Err(RemoteError::Refused {
            status,
            error: text("error"),
            description: text("error_description"),
        })
    }
}

/// TLS trusting `ca` (PEM) or else the system's roots.
fn connector(ca: Option<&Path>) -> Result<TlsConnector, RemoteError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs = crate::tls::read_certificates(path)
                .map_err(|e| RemoteError::Certificates(e.to_string()))?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| RemoteError::Certificates(e.to_string()))?;
            }
        }
        None => {
            let loaded = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(loaded.certs);
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RemoteError::Certificates(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// What a path segment keeps as is: RFC 3986 unreserved characters, which
/// are all a client id may hold.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A client id as one path segment.
pub fn segment(id: &str) -> String {
    utf8_percent_encode(id, SEGMENT).to_string()
}

/// A JWK Set document as the admin API takes it: the JSON object itself
/// (text that is no JSON goes as a string, which the server refuses).
pub fn jwks_value(jwks: &str) -> Value {
    serde_json::from_str(jwks).unwrap_or_else(|_| Value::String(jwks.to_owned()))
}

/// The body of `PATCH /clients/{id}` for `client update`'s options.
pub fn update_body(update: &crate::admin::ClientUpdate) -> Value {
    let mut body = serde_json::Map::new();
    let mut put = |key: &str, value: Value| {
        body.insert(key.to_owned(), value);
    };
    if let Some(name) = &update.name {
        put("name", json!(name));
    }
    if let Some(scopes) = &update.allowed_scopes {
        put("allowed_scopes", json!(scopes));
    }
    if let Some(scopes) = &update.default_scopes {
        put("default_scopes", json!(scopes));
    }
    if let Some(audiences) = &update.audiences {
        put("allowed_audiences", json!(audiences));
    }
    if let Some(lifetime) = update.token_lifetime_secs {
        put("token_lifetime_secs", json!(lifetime));
    }
    if let Some(rps) = update.rate_limit_rps {
        put("rate_limit_rps", json!(rps));
    }
    if let Some(required) = update.require_dpop {
        put("require_dpop", json!(required));
    }
    if let Some(method) = update.auth_method {
        put("token_endpoint_auth_method", json!(method.name()));
    }
    if let Some(jwks) = &update.jwks {
        put("jwks", jwks_value(jwks));
    }
    if let Some(uri) = &update.jwks_uri {
        put("jwks_uri", json!(uri));
    }
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::ClientUpdate;

    #[test]
    fn updates_send_only_what_changes_and_null_clears() {
        let update = ClientUpdate {
            name: Some("x".into()),
            token_lifetime_secs: Some(None),
            rate_limit_rps: Some(Some(5)),
            ..ClientUpdate::default()
        };
        assert_eq!(
            update_body(&update),
            json!({ "name": "x", "token_lifetime_secs": null, "rate_limit_rps": 5 })
        );
        let keyed = ClientUpdate {
            auth_method: Some(crate::domain::client::AuthMethod::PrivateKeyJwt),
            jwks: Some(r#"{"keys": []}"#.into()),
            ..ClientUpdate::default()
        };
        assert_eq!(
            update_body(&keyed),
            json!({ "token_endpoint_auth_method": "private_key_jwt", "jwks": { "keys": [] } })
        );
        assert_eq!(jwks_value("not json"), json!("not json"));
        assert_eq!(segment("a.b~c_d-1"), "a.b~c_d-1");
        assert_eq!(segment("a/b?c"), "a%2Fb%3Fc");
    }

    #[tokio::test]
    async fn bad_urls_and_missing_credentials_are_refused_before_any_request() {
        let args = RemoteArgs {
            server: None,
            ca_cert: None,
        };
        for url in ["http://127.0.0.1:1/x", "not a url", "https://"] {
            assert!(matches!(
                AdminApi::connect(&args, url, |_| None).await,
                Err(RemoteError::Url(_))
            ));
        }
        assert!(matches!(
            AdminApi::connect(&args, "https://127.0.0.1:1", |_| None).await,
            Err(RemoteError::Credentials)
        ));
    }
}
