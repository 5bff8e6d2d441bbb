use std::collections::BTreeMap;

use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn the_shipped_config_file_parses_to_the_defaults() {
    let text = include_str!("../../config.toml");
    let mut parsed = Config::from_toml(text, &env(&[])).unwrap();
    assert_eq!(parsed.scope_names(), ["api:read", "api:write"]);
    parsed.scopes.clear(); // examples, not defaults
    let defaults = Config::default();
    assert_eq!(
        toml::to_string(&parsed).unwrap(),
        toml::to_string(&defaults).unwrap(),
        "config.toml must list every setting with its default"
    );
}

#[test]
fn environment_overrides_sections_and_named_variables() {
    let config = Config::from_toml(
        "[server]\nbind = \"127.0.0.1:1\"\n",
        &env(&[
            ("AUTH_SERVER_SERVER_BIND", "127.0.0.1:9000"),
            ("AUTH_SERVER_TOKEN_LIFETIME_SECS", "60"),
            ("AUTH_SERVER_SERVER_IDLE_TIMEOUT_SECS", "5"),
            ("AUTH_SERVER_DEV_DEMO_CLIENT", "false"),
            ("AUTH_SERVER_ISSUER", "https://auth.example.com"),
            ("DATABASE_URL", "postgres://u:p@h/db"),
            ("JWT_SECRET", "s"),
            ("UNRELATED", "x"),
        ]),
    )
    .unwrap();
    assert_eq!(config.server.bind.port(), 9000);
    assert_eq!(config.token.lifetime_secs, 60);
    assert_eq!(config.server.idle_timeout_secs, 5);
    assert!(!config.dev.demo_client);
    assert_eq!(config.issuer, "https://auth.example.com");
    assert_eq!(config.database.url, "postgres://u:p@h/db");
    assert_eq!(config.jwt_secret.unwrap().0, "s");
}

#[test]
fn unknown_keys_and_bad_values_are_refused() {
    for (text, vars) in [
        ("nonsense = 1", env(&[])),
        ("[server]\nbnid = \"x\"", env(&[])),
        ("[token]\nalgorithm = \"none\"", env(&[])),
        ("[token]\nlifetime_secs = 0", env(&[])),
        ("[server]\nidle_timeout_secs = 0", env(&[])),
        ("[http]\nbase_path = \"nope\"", env(&[])),
        ("[tls]\ncert = \"a.pem\"", env(&[])),
        ("", env(&[("AUTH_SERVER_TOKEN_LIFETIME_SECS", "abc")])),
        (
            "[token]\nalgorithm = \"HS256\"",
            env(&[("JWT_SECRET", "short")]),
        ),
        ("issuer = \"http://plain\"", env(&[])),
    ] {
        assert!(Config::from_toml(text, &vars).is_err(), "{text} {vars:?}");
    }
}

#[test]
fn hs256_accepts_a_long_secret() {
    let config = Config::from_toml(
        "[token]\nalgorithm = \"HS256\"",
        &env(&[("JWT_SECRET", &"k".repeat(32))]),
    )
    .unwrap();
    assert_eq!(config.token.algorithm, Algorithm::HS256);
}

#[test]
fn production_refuses_dev_certificates_and_debug_logs() {
    let err = Config::from_toml("", &env(&[("ENVIRONMENT", "production")])).unwrap_err();
    assert!(matches!(err, ConfigError::Production(_)), "{err}");
    let err = Config::from_toml(
        "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n[log]\nlevel = \"debug\"",
        &env(&[("ENVIRONMENT", "production")]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("log.level"), "{err}");
    let ok = Config::from_toml(
        "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n[token]\nkek_file = \"/etc/kek\"",
        &env(&[("ENVIRONMENT", "PRODUCTION")]),
    )
    .unwrap();
    assert_eq!(ok.environment, Mode::Production);
}

/// A well-formed key-encryption key for the tests (not a secret).
const TEST_KEK: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

#[test]
fn production_needs_a_kek_for_stored_keys_and_never_echoes_one() {
    let tls = "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"";
    let prod = |vars: &[(&str, &str)]| {
        let mut all = vec![("ENVIRONMENT", "production")];
        all.extend_from_slice(vars);
        Config::from_toml(tls, &env(&all))
    };
    let err = prod(&[]).unwrap_err();
    assert!(matches!(err, ConfigError::Production(_)), "{err}");
    assert!(err.to_string().contains("AUTH_SERVER_KEK"), "{err}");
    let config = prod(&[("AUTH_SERVER_KEK", TEST_KEK)]).unwrap();
    assert_eq!(config.kek.as_ref().unwrap().0, TEST_KEK);
    let shown = config.to_masked_toml();
    assert!(!shown.contains(TEST_KEK), "{shown}");
    assert!(shown.contains("AUTH_SERVER_KEK: set (masked)"), "{shown}");
    for bad in [
        "c2hvcnQ=",
        "not base64!",
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=AA",
    ] {
        let err = prod(&[("AUTH_SERVER_KEK", bad)]).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid(_)), "{err}");
        assert!(!err.to_string().contains(bad), "{err}");
    }
    // HS256 stores no keys, so needs no KEK.
    let hs = Config::from_toml(
        &format!("{tls}\n[token]\nalgorithm = \"HS256\""),
        &env(&[
            ("ENVIRONMENT", "production"),
            ("JWT_SECRET", &"k".repeat(32)),
            ("JWT_SECRET_PREVIOUS", &"p".repeat(32)),
        ]),
    )
    .unwrap();
    assert!(
        hs.to_masked_toml()
            .contains("JWT_SECRET_PREVIOUS: set (masked)")
    );
}

#[test]
fn a_key_is_published_longer_than_the_jwks_is_cached() {
    let with = |toml: &str| Config::from_toml(toml, &env(&[]));
    assert!(with("[token]\nkey_publish_ahead_secs = 300").is_err());
    assert!(with("[token]\nkey_publish_ahead_secs = 301").is_ok());
    assert!(with("[http]\njwks_max_age_secs = 2\n[token]\nkey_publish_ahead_secs = 3").is_ok());
    assert!(with("[http]\njwks_max_age_secs = 100000").is_err());
    assert!(with("[token]\nkey_rotation_days = 0").is_ok());
    assert!(
        Config::from_toml("", &env(&[("JWT_SECRET_PREVIOUS", "short")])).is_err(),
        "a previous HS256 secret is held to the same length"
    );
}

#[test]
fn masked_output_hides_secrets() {
    let config = Config::from_toml(
        "",
        &env(&[
            ("DATABASE_URL", "postgres://user:hunter2@db/auth"),
            ("JWT_SECRET", "super-secret-value"),
        ]),
    )
    .unwrap();
    let shown = config.to_masked_toml();
    assert!(!shown.contains("hunter2"));
    assert!(!shown.contains("super-secret-value"));
    assert!(shown.contains("postgres://user:***@db/auth"));
    assert!(shown.contains("JWT_SECRET: set (masked)"));
    assert_eq!(format!("{:?}", config.jwt_secret), "Some(Secret(***))");
}

#[test]
fn issuer_defaults_to_loopback_and_port() {
    let config = Config::default();
    assert_eq!(
        config.issuer_for_port(8443),
        "https://127.0.0.1:8443/auth-server/v1"
    );
}

#[test]
fn production_refuses_a_database_without_tls() {
    let tls = "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"";
    let prod = |url: &str| {
        Config::from_toml(
            tls,
            &env(&[
                ("ENVIRONMENT", "production"),
                ("DATABASE_URL", url),
                ("AUTH_SERVER_KEK", TEST_KEK),
            ]),
        )
    };
    for plain in [
        "postgres://u@db/auth",
        "postgres://u@db/auth?sslmode=prefer",
        "postgres://u@db/auth?sslmode=disable",
        "host=db user=u",
    ] {
        let err = prod(plain).unwrap_err();
        assert!(matches!(err, ConfigError::Production(_)), "{plain}: {err}");
        assert!(err.to_string().contains("sslmode=require"), "{err}");
    }
    for secure in [
        "postgres://u@db/auth?sslmode=require",
        "postgres://u@db/auth?application_name=a&sslmode=require",
        "host=db user=u sslmode=require",
    ] {
        assert!(prod(secure).is_ok(), "{secure}");
    }
    assert!(Config::from_toml("", &env(&[("DATABASE_URL", "postgres://u@db/a")])).is_ok());
}

#[test]
fn database_pool_settings_are_validated() {
    assert!(Config::from_toml("[database]\nmax_connections = 0", &env(&[])).is_err());
    assert!(Config::from_toml("[database]\nstatement_timeout_secs = 0", &env(&[])).is_err());
    let config =
        Config::from_toml("", &env(&[("AUTH_SERVER_DATABASE_MAX_CONNECTIONS", "20")])).unwrap();
    assert_eq!(config.database.max_connections, 20);
}

/// Variables plus the files they name, as a container would see them.
struct Mounted {
    vars: BTreeMap<String, String>,
    files: BTreeMap<String, String>,
}

impl Mounted {
    fn new(vars: &[(&str, &str)], files: &[(&str, &str)]) -> Self {
        let own = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        Self {
            vars: own(vars),
            files: own(files),
        }
    }
}

impl Environment for Mounted {
    fn vars(&self) -> Vec<(String, String)> {
        self.vars.vars()
    }

    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        let path = path.to_str().unwrap_or_default();
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }
}

const HMAC_SECRET: &str = "0123456789abcdef0123456789abcdef-from-a-file";

#[test]
fn jwt_secret_file_stands_for_jwt_secret() {
    let env = Mounted::new(
        &[("JWT_SECRET_FILE", "/run/secrets/jwt-secret")],
        &[("/run/secrets/jwt-secret", &format!("{HMAC_SECRET}\n"))],
    );
    let config = Config::from_toml("[token]\nalgorithm = \"HS256\"", &env).unwrap();
    assert_eq!(config.jwt_secret.unwrap().0, HMAC_SECRET, "newline dropped");
}

#[test]
fn jwt_secret_previous_file_stands_for_jwt_secret_previous() {
    let previous = "fedcba9876543210fedcba9876543210-the-one-before";
    let env = Mounted::new(
        &[
            ("JWT_SECRET", HMAC_SECRET),
            (
                "JWT_SECRET_PREVIOUS_FILE",
                "/run/secrets/jwt-secret-previous",
            ),
        ],
        &[("/run/secrets/jwt-secret-previous", &format!("{previous}\n"))],
    );
    let config = Config::from_toml("[token]\nalgorithm = \"HS256\"", &env).unwrap();
    assert_eq!(config.jwt_secret_previous.unwrap().0, previous);
}

#[test]
fn db_password_file_stands_for_db_password() {
    let env = Mounted::new(
        &[("DB_PASSWORD_FILE", "/run/secrets/db-password")],
        &[("/run/secrets/db-password", "pass word \r\n")],
    );
    let config = Config::from_toml("", &env).unwrap();
    assert_eq!(
        config.db_password.unwrap().0,
        "pass word ",
        "only line breaks are dropped"
    );
}

#[test]
fn database_url_file_stands_for_database_url() {
    let url = "postgres://auth@db.internal/auth?sslmode=require";
    let env = Mounted::new(
        &[("DATABASE_URL_FILE", "/run/secrets/database-url")],
        &[("/run/secrets/database-url", url)],
    );
    let config = Config::from_toml("[database]\nurl = \"postgres://file@x/y\"", &env).unwrap();
    assert_eq!(
        config.database.url, url,
        "overrides the file like DATABASE_URL"
    );
}

#[test]
fn metrics_token_file_stands_for_metrics_token() {
    let token = "m".repeat(MIN_METRICS_TOKEN_LEN);
    let env = Mounted::new(
        &[("METRICS_TOKEN_FILE", "/run/secrets/metrics-token")],
        &[("/run/secrets/metrics-token", &format!("{token}\n"))],
    );
    let config = Config::from_toml("", &env).unwrap();
    assert_eq!(config.metrics_token.unwrap().0, token);
    // The contents get the checks the variable gets.
    let short = Mounted::new(
        &[("METRICS_TOKEN_FILE", "/m")],
        &[("/m", "too-short-to-be-a-token")],
    );
    let err = Config::from_toml("", &short).unwrap_err();
    assert!(err.to_string().contains("METRICS_TOKEN"), "{err}");
    assert!(!err.to_string().contains("too-short"), "{err}");
}

#[test]
fn a_secret_file_that_cannot_be_used_is_a_config_error_naming_no_secret() {
    let cases = [
        // Missing.
        Mounted::new(&[("JWT_SECRET_FILE", "/run/secrets/absent")], &[]),
        // Empty, or only a line break.
        Mounted::new(
            &[("DB_PASSWORD_FILE", "/run/secrets/empty")],
            &[("/run/secrets/empty", "\n")],
        ),
        // Names no file at all.
        Mounted::new(&[("METRICS_TOKEN_FILE", "")], &[]),
        // Both the variable and its file: which one is meant?
        Mounted::new(
            &[
                ("DB_PASSWORD", "hunter2-in-the-environment"),
                ("DB_PASSWORD_FILE", "/run/secrets/db-password"),
            ],
            &[("/run/secrets/db-password", "hunter2-in-the-file")],
        ),
    ];
    for env in cases {
        let err = Config::from_toml("", &env).unwrap_err();
        assert!(matches!(err, ConfigError::SecretFile { .. }), "{err}");
        let line = err.to_string();
        assert!(line.contains("_FILE"), "{line}");
        assert!(!line.contains("hunter2"), "{line}");
        assert_eq!(line.lines().count(), 1, "{line}");
    }
}

#[test]
fn an_unreadable_secret_file_says_why() {
    // The real file system: a directory where a file is expected.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let err = Config::from_toml("", &env(&[("JWT_SECRET_FILE", path)])).unwrap_err();
    let line = err.to_string();
    assert!(line.starts_with("JWT_SECRET_FILE: cannot read "), "{line}");
    assert!(line.contains(path), "{line}");

    let file = dir.path().join("secret");
    std::fs::write(&file, format!("{HMAC_SECRET}\n")).unwrap();
    let config = Config::from_toml(
        "[token]\nalgorithm = \"HS256\"",
        &env(&[("JWT_SECRET_FILE", file.to_str().unwrap())]),
    )
    .unwrap();
    assert_eq!(config.jwt_secret.unwrap().0, HMAC_SECRET);
}

#[test]
fn only_the_listed_secrets_have_a_file_form() {
    let config = Config::from_toml(
        "",
        &env(&[("SOME_TOOL_FILE", "/nonexistent"), ("JWT_SECRET", "s")]),
    )
    .unwrap();
    assert_eq!(config.jwt_secret.unwrap().0, "s");
}
