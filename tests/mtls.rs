//! Mutual TLS (RFC 8705) over real TLS: the listener asks for an optional
//! client certificate; `tls_client_auth` against a configured CA and
//! `self_signed_tls_client_auth` against a registered certificate;
//! certificate-bound tokens (`cnf.x5t#S256`) refused at validation without
//! the thumbprint of the right certificate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use auth_server::admin::NewClient;
use auth_server::domain::certificate::{TlsClientAuth, certificate_thumbprint};
use auth_server::keys::Algorithm;
use common::dpop::DpopKey;
use common::{TestServer, api, json_body, unverified_claims, user_api_rules};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A certificate authority that issues client certificates.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A client certificate for `dns` with subject `CN=<cn>`.
    fn issue(&self, cn: &str, dns: &str) -> ClientCert {
        let mut params = CertificateParams::new(vec![dns.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names.push(SanType::URI(
            format!("spiffe://example.test/{cn}").try_into().unwrap(),
        ));
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        ClientCert {
            der: cert.der().to_vec(),
            pem: format!("{}{}", cert.pem(), key.serialize_pem()),
        }
    }
}

/// A client certificate with its key.
struct ClientCert {
    der: Vec<u8>,
    /// Certificate and private key, PEM.
    pem: String,
}

impl ClientCert {
    fn self_signed(cn: &str) -> Self {
        let mut params = CertificateParams::new(vec![format!("{cn}.example.test")]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            der: cert.der().to_vec(),
            pem: format!("{}{}", cert.pem(), key.serialize_pem()),
        }
    }

    fn thumbprint(&self) -> String {
        certificate_thumbprint(&self.der)
    }
}

/// A server trusting `ca` for client certificates, with endpoint rules.
async fn server_trusting(ca: &Ca) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("client-ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    TestServer::start_in(dir, Algorithm::EdDSA, |config| {
        user_api_rules(config);
        config.tls.client_ca_file = ca_file.display().to_string();
    })
    .await
}

/// An HTTPS client of `server` that presents `cert`.
fn client_with(server: &TestServer, cert: &ClientCert) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&server.cert_pem).unwrap()])
        .identity(reqwest::Identity::from_pem(cert.pem.as_bytes()).unwrap())
        .build()
        .unwrap()
}

/// Registers a client authenticating with `kind`/`value`; its id.
async fn register(server: &TestServer, kind: &str, value: &str) -> String {
    server
        .create_client(NewClient {
            name: format!("mTLS {kind}"),
            allowed_scopes: "read".into(),
            tls_client_auth: Some(TlsClientAuth::from_parts(kind, value).unwrap()),
            ..NewClient::default()
        })
        .await
        .0
}

/// A token request by `id` with no secret, over `http`.
async fn token_request(http: &reqwest::Client, server: &TestServer, id: &str) -> reqwest::Response {
    http.post(server.token_url())
        .form(&[("grant_type", "client_credentials"), ("client_id", id)])
        .send()
        .await
        .unwrap()
}

async fn bound_token(http: &reqwest::Client, server: &TestServer, id: &str) -> String {
    let response = token_request(http, server, id).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = json_body(response).await;
    assert_eq!(body["token_type"], "Bearer");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn assert_invalid_client(response: reqwest::Response, case: &str) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
    assert_eq!(
        json_body(response).await["error"],
        "invalid_client",
        "{case}"
    );
}

/// What validation says of `token` for a resource server that saw
/// `fields` (the certificate thumbprint, a proof).
async fn validate(server: &TestServer, token: &str, fields: Value) -> StatusCode {
    let url = "https://api.test/v1/users/7";
    api::validate_for(&server.client(), &server.base_url, token, url, &fields).await
}

#[tokio::test]
async fn tls_client_auth_binds_the_token_to_the_certificate() {
    let ca = Ca::new("Test client CA");
    let server = server_trusting(&ca).await;
    let cert = ca.issue("billing", "billing.example.test");
    let http = client_with(&server, &cert);
    for (kind, value) in [
        ("san_dns", "billing.example.test"),
        ("san_uri", "spiffe://example.test/billing"),
        ("subject_dn", "CN=billing"),
    ] {
        let id = register(&server, kind, value).await;
        let token = bound_token(&http, &server, &id).await;
        assert_eq!(
            unverified_claims(&token)["cnf"],
            json!({"x5t#S256": cert.thumbprint()}),
            "{kind}"
        );
        // Introspection, authenticated by the same certificate, shows the binding.
        let introspected = http
            .post(api::endpoint(&server.base_url, "introspect"))
            .form(&[("token", token.as_str()), ("client_id", id.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(introspected.status(), StatusCode::OK);
        let body = json_body(introspected).await;
        assert_eq!(body["active"], true);
        assert_eq!(body["cnf"]["x5t#S256"], cert.thumbprint().as_str());

        let thumbprint = json!({"certificate_thumbprint": cert.thumbprint()});
        assert_eq!(validate(&server, &token, thumbprint).await, StatusCode::OK);
        assert_eq!(
            validate(&server, &token, json!({})).await,
            StatusCode::UNAUTHORIZED
        );
        let other = json!({"certificate_thumbprint": ClientCert::self_signed("x").thumbprint()});
        assert_eq!(
            validate(&server, &token, other).await,
            StatusCode::UNAUTHORIZED
        );
        // Once cached, still refused without it.
        assert_eq!(
            validate(&server, &token, json!({})).await,
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn certificates_that_do_not_match_the_registration_are_invalid_client() {
    let ca = Ca::new("Test client CA");
    let server = server_trusting(&ca).await;
    let id = register(&server, "san_dns", "billing.example.test").await;
    let foreign_ca = Ca::new("Some other CA");
    let cases = [
        (
            "chains to no configured CA",
            foreign_ca.issue("billing", "billing.example.test"),
        ),
        (
            "another subject",
            ca.issue("shipping", "shipping.example.test"),
        ),
        ("self-signed", ClientCert::self_signed("billing")),
    ];
    for (case, cert) in cases {
        let response = token_request(&client_with(&server, &cert), &server, &id).await;
        assert_invalid_client(response, case).await;
    }
    // No certificate at all: the client_id alone authenticates nothing.
    assert_invalid_client(token_request(&server.client(), &server, &id).await, "none").await;
    // A client registered with a certificate never uses its secret.
    let (tls_id, secret) = server
        .create_client(NewClient {
            name: "mTLS with a secret".into(),
            tls_client_auth: Some(TlsClientAuth::from_parts("san_dns", "x.example.test").unwrap()),
            ..NewClient::default()
        })
        .await;
    let response = api::token_request(&server.client(), &server.base_url, &tls_id, &secret).await;
    assert_invalid_client(response, "secret").await;
}

#[tokio::test]
async fn self_signed_tls_client_auth_accepts_only_the_registered_certificate() {
    // No CA configured at all: self-signed registrations still work.
    let server = TestServer::start_with(Algorithm::EdDSA, user_api_rules).await;
    let mine = ClientCert::self_signed("billing");
    let theirs = ClientCert::self_signed("shipping");
    let id = register(&server, "self_signed", &mine.thumbprint()).await;
    let _their_id = register(&server, "self_signed", &theirs.thumbprint()).await;
    let token = bound_token(&client_with(&server, &mine), &server, &id).await;
    assert_eq!(
        unverified_claims(&token)["cnf"]["x5t#S256"],
        mine.thumbprint().as_str()
    );
    let response = token_request(&client_with(&server, &theirs), &server, &id).await;
    assert_invalid_client(response, "another client's certificate").await;

    // mTLS and DPoP together: both bindings, both checked.
    let key = DpopKey::generate("EdDSA");
    let response = client_with(&server, &mine)
        .post(server.token_url())
        .header("DPoP", key.proof("POST", &server.token_url(), None))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let body = json_body(response).await;
    assert_eq!(body["token_type"], "DPoP");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(
        unverified_claims(token)["cnf"],
        json!({"jkt": key.thumbprint(), "x5t#S256": mine.thumbprint()})
    );
    let url = "https://api.test/v1/users/7";
    let both = json!({
        "certificate_thumbprint": mine.thumbprint(),
        "dpop_proof": key.proof("GET", url, Some(token)),
    });
    assert_eq!(validate(&server, token, both).await, StatusCode::OK);
    let proof_only = json!({"dpop_proof": key.proof("GET", url, Some(token))});
    assert_eq!(
        validate(&server, token, proof_only).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_client_certificate_changes_nothing_for_a_secret_client() {
    let ca = Ca::new("Test client CA");
    let server = server_trusting(&ca).await;
    let (id, secret) = server.standard_client().await;
    let http = client_with(&server, &ca.issue("billing", "billing.example.test"));
    let body = api::token_body(&http, &server.base_url, &id, &secret, &[]).await;
    let token = body["access_token"].as_str().unwrap();
    assert!(unverified_claims(token).get("cnf").is_none());
    assert_eq!(validate(&server, token, json!({})).await, StatusCode::OK);
}
