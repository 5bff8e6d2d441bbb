//! Property tests for endpoint URL normalisation and scope rules: arbitrary
//! input never panics, normalising the canonical form again changes nothing,
//! and no spelling of a path (dot segments, encoded dots, slashes and
//! backslashes, single or double encoded, fullwidth and other lookalikes,
//! userinfo, case, default ports, doubled slashes, path parameters) gets a
//! URL accepted that a backend could route outside the rule's prefix.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use auth_server::domain::endpoint::{
    EndpointPattern, EndpointRule, NormalizedUrl, ScopeRules, normalize_url,
};
use auth_server::domain::scope::ScopeSet;
use proptest::prelude::*;
use unicode_normalization::UnicodeNormalization;

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

const SEGMENTS: [&str; 40] = [
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
    "..%252f",
    "\u{ff0e}\u{ff0e}",
    "%EF%BC%8E%EF%BC%8E",
    "..\u{ff0f}",
    "\u{2025}",
    ".\u{200b}.",
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

/// The path as an aggressive backend might route it: escapes decoded until
/// none is left (double encoding), Unicode NFKC and the common slash and dot
/// lookalikes folded, backslashes as slashes, slashes merged, `;` path
/// parameters dropped, whitespace and invisible characters trimmed, then dot
/// segments resolved.
fn backend_path(raw: &str) -> Vec<String> {
    let rest = raw.split_once("://").map_or(raw, |(_, rest)| rest);
    let rest = &rest[rest.find(['/', '\\', '?', '#']).unwrap_or(rest.len())..];
    let path = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    let mut decoded = path.to_owned();
    for _ in 0..4 {
        let again = percent_encoding::percent_decode_str(&decoded)
            .decode_utf8_lossy()
            .into_owned();
        if again == decoded {
            break;
        }
        decoded = again;
    }
    let folded: String = decoded
        .nfkc()
        .map(|c| match c {
            '\u{2044}' | '\u{2215}' | '\u{29F8}' => '/',
            '\u{29F5}' | '\u{29F9}' | '\\' => '/',
            '\u{3002}' | '\u{FF61}' => '.',
            c => c,
        })
        .collect();
    let mut out: Vec<String> = Vec::new();
    for segment in folded.split('/') {
        let segment = segment.split(';').next().unwrap_or("");
        let trimmed: String = segment
            .chars()
            .filter(|c| !c.is_whitespace() && !matches!(c, '\u{200B}'..='\u{200F}' | '\u{FEFF}'))
            .collect();
        match trimmed.as_str() {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            _ => out.push(segment.to_owned()),
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

/// A piece of a path under `/v1/`, before it is spelled.
#[derive(Debug, Clone)]
enum Piece {
    /// An ordinary segment name.
    Name(&'static str),
    /// `.`
    Dot,
    /// `..`
    DotDot,
    /// `/`
    Slash,
}

/// Spellings of `.`: plain, encoded once or twice in either case, inner
/// digits encoded, overlong UTF-8, IIS `%u`, and NFKC lookalikes raw,
/// encoded and double encoded.
const DOTS: [&str; 17] = [
    ".",
    "%2e",
    "%2E",
    "%252e",
    "%252E",
    "%25%32%65",
    "%%32%65",
    "%c0%ae",
    "%u002e",
    "\u{ff0e}",
    "%EF%BC%8E",
    "%ef%bc%8e",
    "%25EF%25BC%258E",
    "\u{2024}",
    "%E2%80%A4",
    "\u{fe52}",
    "\u{3002}",
];

/// Spellings of `..` as one piece, and what a backend drops around one.
const DOT_DOTS: [&str; 4] = ["\u{2025}", "%E2%80%A5", "\u{fe30}", "%EF%B8%B0"];
const DOT_DOT_NOISE: [&str; 8] = ["", "", ";", ";x", "%3b", "%20", "\u{200b}", "%09"];

/// Spellings of `/` (and `\`, its alias): plain, encoded once or twice,
/// overlong, `%u`, and lookalikes raw and encoded.
const SLASHES: [&str; 20] = [
    "/",
    "%2f",
    "%2F",
    "%252f",
    "%252F",
    "\\",
    "%5c",
    "%5C",
    "%255c",
    "%255C",
    "\u{ff0f}",
    "%EF%BC%8F",
    "\u{ff3c}",
    "%ef%bc%bc",
    "\u{2215}",
    "%E2%88%95",
    "\u{2044}",
    "\u{fe68}",
    "%c0%af",
    "%u002f",
];

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        2 => prop::sample::select(vec!["users", "admin", "v1", "x"]).prop_map(Piece::Name),
        1 => Just(Piece::Dot),
        3 => Just(Piece::DotDot),
        3 => Just(Piece::Slash),
    ]
}

/// A path under `/v1/` as pieces, with each piece spelled in one of its
/// encoded or lookalike forms: (spelled, plain).
fn encoded_path() -> impl Strategy<Value = (String, String)> {
    let spelled = (
        piece(),
        prop::sample::select(DOTS.to_vec()),
        prop::sample::select(DOTS.to_vec()),
        prop_oneof![
            Just(None),
            prop::sample::select(DOT_DOTS.to_vec()).prop_map(Some)
        ],
        prop::sample::select(DOT_DOT_NOISE.to_vec()),
        prop::sample::select(SLASHES.to_vec()),
    )
        .prop_map(
            |(piece, dot, other_dot, dot_dot, noise, slash)| match piece {
                Piece::Name(name) => (name.to_owned(), name.to_owned()),
                Piece::Dot => (dot.to_owned(), ".".to_owned()),
                Piece::DotDot => {
                    let spelled =
                        dot_dot.map_or_else(|| format!("{dot}{other_dot}"), str::to_owned);
                    (format!("{spelled}{noise}"), "..".to_owned())
                }
                Piece::Slash => (slash.to_owned(), "/".to_owned()),
            },
        );
    prop::collection::vec(spelled, 1..8).prop_map(|pieces| {
        let (mut spelled, mut plain) = ("/v1/".to_owned(), "/v1/".to_owned());
        for (s, p) in pieces {
            spelled.push_str(&s);
            plain.push_str(&p);
        }
        (spelled, plain)
    })
}

/// Whether a plain path leaves `/v1` once slashes are merged and dot
/// segments resolved.
fn escapes_v1(plain: &str) -> bool {
    let mut out: Vec<&str> = Vec::new();
    for segment in plain.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    out.first() != Some(&"v1")
}

proptest! {
    #![proptest_config(config(4096))]

    #[test]
    fn encoded_dots_and_separators_never_escape_v1((spelled, plain) in encoded_path()) {
        let rules = ScopeRules::new(vec![EndpointRule {
            scope: "v1".into(),
            patterns: vec![EndpointPattern::parse("https://api.example.com/v1/**").unwrap()],
            methods: Vec::new(),
        }]);
        let raw = format!("https://api.example.com{spelled}");
        let Ok(url) = normalize_url(&raw) else {
            return Ok(());
        };
        check_idempotent(&url)?;
        if rules.authorize(&ScopeSet::parse("v1").unwrap(), &url, "GET").is_ok() {
            prop_assert!(
                !escapes_v1(&plain),
                "{} (plainly {}) granted as {:?}",
                raw.escape_default(),
                plain,
                url.segments
            );
            let backend = backend_path(&raw);
            prop_assert_eq!(backend.first().map(String::as_str), Some("v1"), "{}", raw.escape_default());
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
