//! The real binary: first run in development mode (dev certificate, demo
//! client, the printed credentials get a token), the CLI, exit codes, and a
//! clean exit on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::process::{ServerProcess, command, run, text};

/// A server that rotates its log at a tiny size.
fn spawn(dir: &std::path::Path) -> ServerProcess {
    ServerProcess::spawn(
        dir,
        &[
            ("AUTH_SERVER_LOG_MAX_FILE_BYTES", "2048"),
            ("AUTH_SERVER_LOG_MAX_FILES", "3"),
        ],
    )
}

fn value_after<'a>(text: &'a str, label: &str) -> &'a str {
    text.split(label)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{label} not found in {text}"))
}

// Multi-threaded so the client's connection task keeps running (and answers
// the server's HTTP/2 GOAWAY ping) while this thread waits for the exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_prints_a_demo_client_whose_credentials_get_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = spawn(dir.path());
    let id_line = server.wait_for("client_id:");
    let secret_line = server.wait_for("client_secret:");
    let curl_line = server.wait_for("/oauth/token");
    let listening = server.wait_for("auth-server listening");
    let id = value_after(&id_line, "client_id:").to_owned();
    let secret = value_after(&secret_line, "client_secret:").to_owned();
    let token_url = curl_line.trim().to_owned();
    assert!(token_url.starts_with("https://127.0.0.1:"), "{token_url}");
    let log: serde_json::Value = serde_json::from_str(&listening).expect("JSON log line");
    assert_eq!(log["level"], "INFO");

    // The dev certificate was generated into certs/ and is what we trust.
    let cert = std::fs::read(dir.path().join("certs/dev-cert.pem")).unwrap();
    // Signing keys live in the store, sealed under a development KEK that
    // only its owner may read; no key file is written.
    let kek_file = dir.path().join("certs/kek");
    let kek = std::fs::read_to_string(&kek_file).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&kek_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    assert!(!dir.path().join("certs/signing-eddsa.pem").exists());
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&cert).unwrap()])
        .build()
        .unwrap();
    let response = client
        .post(&token_url)
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "api:read")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["scope"], "api:read");

    // SIGHUP reloads certificate and keys and the server keeps serving.
    server.signal("HUP");
    server.wait_for("TLS certificate reloaded");
    server.wait_for("signing keys reloaded");
    let response = client
        .post(&token_url)
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Validate and a failed authentication put a bearer token and a Basic
    // header on the wire too.
    let token = body["access_token"].as_str().unwrap().to_owned();
    let validated = client
        .post(token_url.replace("/oauth/token", "/oauth/validate"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(validated.status(), 200);
    let refused = client
        .post(&token_url)
        .basic_auth(&id, Some("wrong-secret-value"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    // The log (rotated: the test runs with a tiny size) holds neither
    // secrets, nor Authorization values, nor whole tokens.
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
    let mut log = String::new();
    let mut files = 0;
    for entry in std::fs::read_dir(dir.path().join("log")).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("auth-server.log")
        {
            files += 1;
            log.push_str(&std::fs::read_to_string(path).unwrap());
        }
    }
    assert!(
        files >= 2,
        "the tiny size makes the log rotate ({files} files)"
    );
    assert!(log.contains("auth-server listening"));
    assert!(
        log.contains("\"route\":\"validate\""),
        "access lines are logged"
    );
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{id}:{secret}"),
    );
    for forbidden in [
        secret.as_str(),
        token.as_str(),
        token.split('.').nth(2).unwrap(),
        basic.as_str(),
        kek.trim(),
        "wrong-secret-value",
        "Bearer ",
        "Basic ",
    ] {
        assert!(
            !log.contains(forbidden),
            "the log contains {forbidden:.12}…"
        );
    }

    // Second run: the store is not empty, so no new demo client is printed.
    let mut again = spawn(dir.path());
    again.wait_for("auth-server listening");
    assert!(!again.seen.iter().any(|l| l.contains("client_secret:")));
    assert!(again.terminate().success());
}

#[test]
fn version_prints_version_and_commit() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--version"], None);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(stdout.contains(env!("CARGO_PKG_VERSION")), "{stdout}");
    assert!(stdout.contains("(git "), "{stdout}");
}

#[test]
fn check_config_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .arg("check-config")
        .env("DATABASE_URL", "postgres://auth:hunter2@db.internal/auth")
        .env("JWT_SECRET", "a-very-secret-value-of-enough-length!")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("hunter2"));
    assert!(!stdout.contains("a-very-secret-value"));
    assert!(stdout.contains("[server]"));
}

#[test]
fn bad_configuration_exits_78_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .env("ENVIRONMENT", "production")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("production"), "{stderr}");

    std::fs::write(
        dir.path().join("bad.toml"),
        "[server]\nmax_connections = \"many\"\n",
    )
    .unwrap();
    let out = run(dir.path(), &["--config", "bad.toml", "check-config"], None);
    assert_eq!(out.status.code(), Some(78));
    let out = run(
        dir.path(),
        &["--config", "missing.toml", "check-config"],
        None,
    );
    assert_eq!(out.status.code(), Some(78));
    let out = run(dir.path(), &["no-such-command"], None);
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn a_missing_secret_file_exits_78_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("absent");
    let out = command(dir.path())
        .args(["check-config"])
        .env("DB_PASSWORD_FILE", &absent)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("DB_PASSWORD_FILE"), "{stderr}");
    assert!(stderr.contains(absent.to_str().unwrap()), "{stderr}");
}

#[test]
fn a_missing_certificate_exits_78_with_one_line() {
    // What a container started without its secrets mounted does.
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .env("ENVIRONMENT", "production")
        .env("AUTH_SERVER_KEK", common::TEST_KEK)
        .env("AUTH_SERVER_TLS_CERT", "/nonexistent/tls.crt")
        .env("AUTH_SERVER_TLS_KEY", "/nonexistent/tls.key")
        .env("AUTH_SERVER_LOG_DIR", "")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("/nonexistent/tls.crt"), "{stderr}");
}

#[test]
fn database_settings_are_checked_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let production = command(dir.path())
        .args(["check-config"])
        .env("ENVIRONMENT", "production")
        .env("AUTH_SERVER_TLS_CERT", "c.pem")
        .env("AUTH_SERVER_TLS_KEY", "k.pem")
        .env("DATABASE_URL", "postgres://auth:hunter2@127.0.0.1:1/auth")
        .output()
        .unwrap();
    assert_eq!(production.status.code(), Some(78));
    let stderr = text(&production.stderr);
    assert!(stderr.contains("sslmode=require"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");

    let malformed = command(dir.path())
        .args(["migrate"])
        .env(
            "DATABASE_URL",
            "postgres://auth:hunter2@127.0.0.1:notaport/auth",
        )
        .output()
        .unwrap();
    assert_eq!(malformed.status.code(), Some(78));
    let stderr = text(&malformed.stderr);
    assert!(stderr.contains("database.url"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn client_admin_commands() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &[
            "client",
            "create",
            "--name",
            "Billing",
            "--id",
            "billing",
            "--scopes",
            "read write",
            "--audience",
            "https://billing.test",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let secret = value_after(&stdout, "client_secret:").to_owned();
    assert_eq!(secret.len(), 43);

    let list = text(&run(dir.path(), &["client", "list"], None).stdout);
    assert!(
        list.contains("billing\tenabled\tread write\tBilling"),
        "{list}"
    );
    let show = run(dir.path(), &["client", "show", "billing"], None);
    let shown = text(&show.stdout);
    assert!(shown.contains("\"client_id\": \"billing\""), "{shown}");
    assert!(!shown.contains(&secret));

    let out = run(
        dir.path(),
        &[
            "client",
            "update",
            "billing",
            "--default-scopes",
            "read",
            "--lifetime-secs",
            "60",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("\"token_lifetime_secs\": 60"));

    let out = run(
        dir.path(),
        &["client", "rotate-secret", "billing", "--grace-secs", "0"],
        None,
    );
    assert!(out.status.success());
    let rotated = value_after(&text(&out.stdout), "client_secret:").to_owned();
    assert_ne!(rotated, secret);

    let out = run(dir.path(), &["client", "disable", "billing"], None);
    assert!(text(&out.stdout).contains("\"enabled\": false"));
    let out = run(dir.path(), &["client", "enable", "billing"], None);
    assert!(text(&out.stdout).contains("\"enabled\": true"));

    // Imported secrets: development only.
    let out = run(
        dir.path(),
        &[
            "client",
            "create",
            "--name",
            "Fixture",
            "--id",
            "test-client",
            "--secret-stdin",
        ],
        Some("test-secret-123\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("test-secret-123"));
    let out = command(dir.path())
        .args(["client", "create", "--name", "X", "--secret-stdin"])
        .env("ENVIRONMENT", "production")
        .env("AUTH_SERVER_TLS_CERT", "c.pem")
        .env("AUTH_SERVER_TLS_KEY", "k.pem")
        .env(
            "AUTH_SERVER_KEK",
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));

    let out = run(
        dir.path(),
        &["client", "update", "billing", "--scopes", "write"],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(64),
        "default scope read is no longer allowed"
    );
    let out = run(dir.path(), &["client", "show", "nobody"], None);
    assert_eq!(out.status.code(), Some(65));
    let out = run(dir.path(), &["client", "delete", "billing"], None);
    assert!(out.status.success());
    let list = text(&run(dir.path(), &["client", "list"], None).stdout);
    assert!(!list.contains("billing"));
}

#[test]
fn proof_of_possession_client_settings() {
    let dir = tempfile::tempdir().unwrap();
    let create = |args: &[&str]| {
        let mut all = vec!["client", "create", "--name", "Svc"];
        all.extend_from_slice(args);
        run(dir.path(), &all, None)
    };
    let out = create(&["--id", "svc", "--tls-san-dns", "svc.test", "--require-dpop"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("\"method\": \"tls_client_auth\""), "{shown}");
    assert!(shown.contains("\"san_dns\": \"svc.test\""), "{shown}");
    assert!(shown.contains("\"require_dpop\": true"), "{shown}");
    assert!(!shown.contains("client_secret:"), "{shown}");

    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["svc.test".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let pem = dir.path().join("svc.pem");
    std::fs::write(&pem, cert.pem()).unwrap();
    let thumbprint = auth_server::domain::certificate::certificate_thumbprint(cert.der());
    let pem_arg = pem.display().to_string();
    let out = run(
        dir.path(),
        &["client", "update", "svc", "--self-signed-cert", &pem_arg],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&run(dir.path(), &["client", "show", "svc"], None).stdout);
    assert!(
        shown.contains("\"method\": \"self_signed_tls_client_auth\""),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("\"self_signed\": \"{thumbprint}\"")),
        "{shown}"
    );

    let out = run(
        dir.path(),
        &[
            "client",
            "update",
            "svc",
            "--clear-tls",
            "--no-require-dpop",
        ],
        None,
    );
    let shown = text(&out.stdout);
    assert!(shown.contains("\"tls_client_auth\": null"), "{shown}");
    assert!(shown.contains("\"require_dpop\": false"), "{shown}");

    for bad in [
        &["--tls-san-dns", "a.test", "--tls-san-uri", "spiffe://a"][..],
        &["--tls-san-ip", "not-an-ip"],
        &["--self-signed-thumbprint", "short"],
    ] {
        assert_eq!(create(bad).status.code(), Some(64), "{bad:?}");
    }
}
