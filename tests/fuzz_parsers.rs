//! Property tests for the parsers that face the network: token request
//! bodies (form and JSON), `Content-Type` selection, the Basic header and
//! the Bearer header. Arbitrary input never panics, and every refusal is one
//! of the documented error codes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use auth_server::domain::error::OAuthError;
use auth_server::http::body::{Params, body_kind, form_decode, parse_form, parse_json};
use auth_server::http::client_auth::extract_credentials;
use auth_server::http::validate::bearer_token;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;

/// Modest case counts keep the suite fast; no regression files are written.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Bytes biased towards the characters the parsers care about.
fn hostile_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    let interesting = prop::sample::select(
        b"=&%+;:,{}[]\"\\ \t\r\n\x00\x7f\xc3\xa9\xff\xfe0123456789abcdefABCDEF_-.".to_vec(),
    );
    prop::collection::vec(prop_oneof![any::<u8>(), interesting], 0..max)
}

/// Form names and values, including unicode and reserved characters.
fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_]{1,12}",
        any::<String>().prop_filter("no control characters", |s| {
            !s.chars().any(char::is_control)
        }),
    ]
}

fn header(name: http::HeaderName, value: &[u8]) -> Option<HeaderMap> {
    let value = HeaderValue::from_bytes(value).ok()?;
    let mut headers = HeaderMap::new();
    headers.insert(name, value);
    Some(headers)
}

/// Every parameter either reads back or is refused as `invalid_request`.
fn check_params(params: &Params, names: &[&str]) {
    for name in names {
        if let Err(e) = params.single(name) {
            assert_eq!(e.code(), "invalid_request", "{name}: {e:?}");
        }
    }
}

const NAMES: [&str; 5] = ["grant_type", "client_id", "client_secret", "scope", ""];

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn form_never_panics_and_refuses_with_invalid_request(body in hostile_bytes(256)) {
        match parse_form(&body) {
            Ok(params) => {
                prop_assert!(std::str::from_utf8(&body).is_ok());
                check_params(&params, &NAMES);
            }
            Err(e) => prop_assert_eq!(e.code(), "invalid_request"),
        }
        let _ = form_decode(&body);
    }

    #[test]
    fn json_never_panics_and_refuses_with_invalid_request(body in hostile_bytes(256)) {
        match parse_json(&body) {
            Ok(params) => check_params(&params, &NAMES),
            Err(e) => prop_assert_eq!(e.code(), "invalid_request"),
        }
    }

    #[test]
    fn json_shaped_input_never_panics(
        pairs in prop::collection::vec((field(), prop_oneof![
            field().prop_map(serde_json::Value::String),
            any::<i64>().prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
            Just(serde_json::json!({"nested": [1, {"deep": "x"}]})),
        ]), 0..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut body = String::from("{");
        for (i, (k, v)) in pairs.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&serde_json::Value::String(k.clone()).to_string());
            body.push(':');
            body.push_str(&v.to_string());
        }
        body.push('}');
        let params = parse_json(body.as_bytes()).unwrap();
        for (k, v) in &pairs {
            let unique = pairs.iter().filter(|(other, _)| other == k).count() == 1;
            match (params.single(k), v) {
                (Ok(got), serde_json::Value::String(s)) if unique => {
                    prop_assert_eq!(got, Some(s.as_str()).filter(|s| !s.is_empty()));
                }
                (Ok(_), _) => prop_assert!(false, "{k} should be refused"),
                (Err(e), _) => prop_assert_eq!(e.code(), "invalid_request"),
            }
        }
        // Any truncation of a valid object is refused, never a panic.
        let at = cut.index(body.len().max(1));
        if at < body.len() && body.is_char_boundary(at) {
            prop_assert!(parse_json(&body.as_bytes()[..at]).is_err());
        }
    }

    #[test]
    fn form_round_trips_what_a_client_encodes(
        pairs in prop::collection::vec((field(), field()), 0..6),
    ) {
        let mut encoder = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &pairs {
            encoder.append_pair(k, v);
        }
        let body = encoder.finish();
        let params = parse_form(body.as_bytes()).unwrap();
        for (k, v) in &pairs {
            let repeated = pairs.iter().filter(|(other, _)| other == k).count() > 1;
            match params.single(k) {
                Ok(got) => {
                    prop_assert!(!repeated);
                    prop_assert_eq!(got, Some(v.as_str()).filter(|v| !v.is_empty()));
                }
                Err(e) => {
                    prop_assert!(repeated);
                    prop_assert_eq!(e.code(), "invalid_request");
                }
            }
        }
    }

    #[test]
    fn content_type_is_form_json_or_invalid_request(
        value in hostile_bytes(64),
        empty in any::<bool>(),
    ) {
        if let Some(headers) = header(http::header::CONTENT_TYPE, &value)
            && let Err(e) = body_kind(&headers, empty)
        {
            prop_assert_eq!(e.code(), "invalid_request");
        }
    }

    #[test]
    fn any_authorization_value_is_refused_with_a_documented_code(
        value in hostile_bytes(128),
        body in hostile_bytes(64),
    ) {
        let params = parse_form(&body).unwrap_or_default();
        if let Some(headers) = header(http::header::AUTHORIZATION, &value) {
            if let Err(e) = extract_credentials(&headers, &params) {
                prop_assert!(
                    matches!(e.code(), "invalid_request" | "invalid_client"),
                    "{e:?}"
                );
            }
            match bearer_token(&headers) {
                Ok(token) => {
                    prop_assert!(!token.is_empty());
                    let b64token = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b);
                    prop_assert!(token.bytes().all(b64token), "{}", token.len());
                }
                Err(e) => prop_assert!(
                    matches!(e.code(), "invalid_token" | "invalid_request"),
                    "{e:?}"
                ),
            }
        }
    }

    #[test]
    fn basic_with_arbitrary_decoded_bytes_never_panics(
        decoded in hostile_bytes(96),
        scheme in prop::sample::select(vec!["Basic ", "basic ", "BASIC  ", "Basic\t"]),
    ) {
        let value = format!("{scheme}{}", STANDARD.encode(&decoded));
        let headers = header(http::header::AUTHORIZATION, value.as_bytes()).unwrap();
        match extract_credentials(&headers, &Params::default()) {
            Ok(credentials) => prop_assert!(!credentials.client_id.is_empty()),
            Err(e) => prop_assert!(
                matches!(e, OAuthError::InvalidClient | OAuthError::InvalidRequest(_)),
                "{e:?}"
            ),
        }
    }

    #[test]
    fn basic_round_trips_form_encoded_credentials(
        id in field().prop_filter("an id", |s| !s.is_empty()),
        secret in field(),
    ) {
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let value = format!("Basic {}", STANDARD.encode(format!("{}:{}", encode(&id), encode(&secret))));
        let headers = header(http::header::AUTHORIZATION, value.as_bytes()).unwrap();
        let credentials = extract_credentials(&headers, &Params::default()).unwrap();
        prop_assert_eq!(credentials.client_id, id);
        prop_assert_eq!(credentials.secret, secret);
    }
}
