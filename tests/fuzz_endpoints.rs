//! Property tests for endpoint URL normalisation and scope rules: arbitrary
//! input never panics, normalising the canonical form again changes nothing,
//! and no spelling of a path (dot segments, encoded dots, slashes and
//! backslashes, userinfo, case, default ports, doubled slashes, path
//! parameters) gets a URL accepted that a backend could route outside the
//! rule's prefix.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use auth_server::domain::endpoint::{
    EndpointPattern, EndpointRule, NormalizedUrl, ScopeRules, normalize_url,
};
use auth_server::domain::scope::ScopeSet;
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn rules() -> ScopeRules {
    let rule = |scope: &str, pattern: &str| EndpointRule {
        scope: scope.into(),
        patterns: vec![EndpointPattern::parse(pattern).unwrap()],
        methods: Vec::new(),
    };
    ScopeRules::new(vec![
        rule("users", "https://api.example.com/v1/users/**"),
        rule("orders", "https://api.example.com/v1/orders/*/items"),
    ])
}

const SCHEMES: [&str; 4] = ["https", "HTTPS", "HtTpS", "http"];

const AUTHORITIES: [&str; 12] = [
    "api.example.com",
    "API.Example.COM",
    "api.example.com.",
    "api.example.com:443",
    "api.example.com:8443",
    "api.example.com@evil.test",
    "evil.test@api.example.com",
    "api.example.com%2eevil.test",
    "api.example.com.evil.test",
    "evil.test",
    "[::1]",
    "127.0.0.1",
];

const SEGMENTS: [&str; 34] = [
    "v1",
    "V1",
    "users",
    "Users",
    "%75sers",
    "orders",
    "7",
    "items",
    "admin",
    "..",
    ".",
    "%2e",
    "%2E%2e",
    ".%2e",
    "%2e.",
    "%2f",
    "%2F",
    "%5c",
    "%5C",
    "",
    "@",
    "\\",
    "..;",
    ";x",
    "..%3b",
    "%252e%252e",
    "a%00",
    "%3f",
    "%23",
    "%20",
    "%25",
    "%",
    "users%2f..%2fadmin",
    "..\\admin",
];

const SEPARATORS: [&str; 5] = ["/", "/", "\\", "//", "/./"];

const SUFFIXES: [&str; 5] = ["", "?x=/../admin", "#/../admin", "?", "/"];

/// A URL assembled from hostile pieces, biased to start like a rule.
fn hostile_url() -> impl Strategy<Value = String> {
    let piece = (
        prop::sample::select(SEPARATORS.to_vec()),
        prop::sample::select(SEGMENTS.to_vec()),
    );
    (
        prop::sample::select(SCHEMES.to_vec()),
        prop::sample::select(AUTHORITIES.to_vec()),
        any::<bool>(),
        prop::collection::vec(piece, 0..6),
        prop::sample::select(SUFFIXES.to_vec()),
    )
        .prop_map(|(scheme, authority, prefixed, pieces, suffix)| {
            let mut url = format!("{scheme}://{authority}");
            if prefixed {
                url.push_str(if pieces.len() % 2 == 0 {
                    "/v1/users"
                } else {
                    "/v1/orders"
                });
            }
            for (separator, segment) in pieces {
                url.push_str(separator);
                url.push_str(segment);
            }
            url.push_str(suffix);
            url
        })
}

/// The path as an aggressive backend might route it: every escape decoded
/// once, backslashes as slashes, slashes merged, `;` path parameters dropped,
/// then dot segments resolved.
fn backend_path(raw: &str) -> Vec<String> {
    let rest = raw.split_once("://").map_or(raw, |(_, rest)| rest);
    let rest = &rest[rest.find(['/', '\\', '?', '#']).unwrap_or(rest.len())..];
    let path = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let mut out: Vec<String> = Vec::new();
    for segment in decoded.replace('\\', "/").split('/') {
        match segment.split(';').next().unwrap_or("") {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s.to_owned()),
        }
    }
    out
}

fn inside_a_rule(path: &[String]) -> bool {
    match path {
        [v1, users, ..] if v1 == "v1" && users == "users" => true,
        [v1, orders, _, items] => v1 == "v1" && orders == "orders" && items == "items",
        _ => false,
    }
}

fn all_scopes() -> ScopeSet {
    ScopeSet::parse("users orders").unwrap()
}

fn check_idempotent(url: &NormalizedUrl) -> Result<(), TestCaseError> {
    let canonical = url.to_canonical();
    let again = normalize_url(&canonical);
    prop_assert_eq!(again.as_ref(), Ok(url), "{}", canonical);
    Ok(())
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn arbitrary_strings_never_panic(raw in any::<String>()) {
        if let Ok(url) = normalize_url(&raw) {
            check_idempotent(&url)?;
        }
        let _ = normalize_url(&format!("https://api.example.com/{raw}"));
    }

    #[test]
    fn normalising_the_canonical_form_again_changes_nothing(raw in hostile_url()) {
        if let Ok(url) = normalize_url(&raw) {
            check_idempotent(&url)?;
        }
    }

    #[test]
    fn no_spelling_escapes_the_rule(raw in hostile_url(), method in prop::sample::select(vec!["GET", "POST"])) {
        let Ok(url) = normalize_url(&raw) else {
            return Ok(());
        };
        if rules().authorize(&all_scopes(), &url, method).is_ok() {
            prop_assert_eq!(url.host.as_str(), "api.example.com", "{}", raw);
            prop_assert_eq!((url.scheme.as_str(), url.port), ("https", 443), "{}", raw);
            let backend = backend_path(&raw);
            prop_assert!(
                inside_a_rule(&backend),
                "{} accepted as {:?}, a backend may route it to {:?}",
                raw,
                url.segments,
                backend
            );
        }
    }
}

#[test]
fn spellings_of_the_rule_itself_are_accepted() {
    for raw in [
        "https://api.example.com/v1/users",
        "HTTPS://API.Example.COM:443/v1/users/42/",
        "https://api.example.com./v1/%75sers/42?x=/../admin#/../admin",
        "https://api.example.com/v1/orders/7/items",
        "https://api.example.com/v1/users/a%20b",
    ] {
        let url = normalize_url(raw).unwrap();
        assert!(
            rules().authorize(&all_scopes(), &url, "GET").is_ok(),
            "{raw}"
        );
    }
}
