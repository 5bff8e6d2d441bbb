use http::HeaderValue;

use super::*;

fn headers(content_type: Option<&'static str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(ct) = content_type {
        h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    h
}

#[test]
fn form_decoding() {
    let p = parse_form(b"grant_type=client_credentials&scope=a+b%20c&empty=&flag").unwrap();
    assert_eq!(p.single("grant_type").unwrap(), Some("client_credentials"));
    assert_eq!(p.single("scope").unwrap(), Some("a b c"));
    assert_eq!(p.single("empty").unwrap(), None);
    assert_eq!(p.single("flag").unwrap(), None);
    assert_eq!(p.single("missing").unwrap(), None);
    assert_eq!(parse_form(b"").unwrap(), Params::default());
}

#[test]
fn form_refuses_repeats_bad_utf8_and_control_characters() {
    let p = parse_form(b"scope=a&scope=b").unwrap();
    assert_eq!(p.single("scope").unwrap_err().code(), "invalid_request");
    assert!(parse_form(b"a=\xff").is_err());
    assert!(parse_form(b"a=%ff").is_err());
    let p = parse_form(b"a=x%00y").unwrap();
    assert!(p.single("a").is_err());
}

#[test]
fn json_objects_keep_duplicates_and_refuse_non_strings() {
    let p = parse_json(br#"{"client_id":"a","grant_type":"client_credentials"}"#).unwrap();
    assert_eq!(p.single("client_id").unwrap(), Some("a"));
    let p = parse_json(br#"{"scope":"a","scope":"b"}"#).unwrap();
    assert!(p.single("scope").is_err());
    let p = parse_json(br#"{"client_id":5,"x":null,"y":[1]}"#).unwrap();
    assert!(p.single("client_id").is_err());
    assert!(p.single("x").is_err());
    for bad in [
        &b"[]"[..],
        b"\"s\"",
        b"{",
        b"{}{}",
        b"",
        b"{\"a\":\"\xff\"}",
        b"null",
    ] {
        assert!(
            parse_json(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn content_type_selection() {
    assert_eq!(
        body_kind(&headers(Some("application/x-www-form-urlencoded")), false).unwrap(),
        BodyKind::Form
    );
    assert_eq!(
        body_kind(&headers(Some("Application/JSON; charset=utf-8")), false).unwrap(),
        BodyKind::Json
    );
    assert!(body_kind(&headers(Some("text/plain")), false).is_err());
    assert!(body_kind(&headers(None), false).is_err());
    assert_eq!(body_kind(&headers(None), true).unwrap(), BodyKind::Form);
}

#[tokio::test]
async fn body_limit() {
    let body = http_body_util::Full::new(Bytes::from(vec![b'a'; 11]));
    assert!(matches!(
        read_limited(&HeaderMap::new(), body, 10).await,
        Err(ApiError::PayloadTooLarge)
    ));
    let body = http_body_util::Full::new(Bytes::from(vec![b'a'; 10]));
    assert_eq!(
        read_limited(&HeaderMap::new(), body, 10)
            .await
            .unwrap()
            .len(),
        10
    );
    let mut declared = HeaderMap::new();
    declared.insert(
        http::header::CONTENT_LENGTH,
        HeaderValue::from_static("999999"),
    );
    let body = http_body_util::Full::new(Bytes::new());
    assert!(matches!(
        read_limited(&declared, body, 10).await,
        Err(ApiError::PayloadTooLarge)
    ));
}
