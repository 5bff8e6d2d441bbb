use http::HeaderValue;

use super::*;
use crate::limit::body::BodyBudget;

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

fn limits(max_bytes: usize, budget: usize) -> BodyLimits {
    BodyLimits {
        max_bytes,
        deadline: std::time::Duration::from_secs(5),
        min_bytes_per_sec: 1024,
        budget: Arc::new(BodyBudget::new(
            budget,
            prometheus::IntGauge::new("g", "g").unwrap(),
        )),
    }
}

fn parts(headers: HeaderMap) -> http::request::Parts {
    let mut request = http::Request::new(());
    *request.headers_mut() = headers;
    request.into_parts().0
}

/// A body fed chunk by chunk through a channel; ends when the sender drops.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(hyper::body::Frame::data(c))))
    }
}

#[tokio::test]
async fn body_limit() {
    let limits = limits(10, 1 << 20);
    let none = parts(HeaderMap::new());
    let body = http_body_util::Full::new(Bytes::from(vec![b'a'; 11]));
    assert!(matches!(
        read_limited(&limits, &none, body).await,
        Err(ApiError::PayloadTooLarge)
    ));
    let body = http_body_util::Full::new(Bytes::from(vec![b'a'; 10]));
    assert_eq!(read_limited(&limits, &none, body).await.unwrap().len(), 10);
    let mut declared = HeaderMap::new();
    declared.insert(
        http::header::CONTENT_LENGTH,
        HeaderValue::from_static("999999"),
    );
    let body = http_body_util::Full::new(Bytes::new());
    assert!(matches!(
        read_limited(&limits, &parts(declared), body).await,
        Err(ApiError::PayloadTooLarge)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_stalled_body_gets_408_after_the_grace_second() {
    let limits = limits(1000, 1 << 20);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(Bytes::from_static(b"grant_type=")).await.unwrap();
    let started = tokio::time::Instant::now();
    let result = read_limited(&limits, &parts(HeaderMap::new()), ChannelBody(rx)).await;
    assert!(matches!(result, Err(ApiError::BodyTooSlow)), "{result:?}");
    let waited = started.elapsed();
    assert!(
        waited > std::time::Duration::from_secs(1) && waited < std::time::Duration::from_secs(2),
        "{waited:?}"
    );
    drop(tx);
    assert_eq!(limits.budget.used(), 0, "the share is returned");
}

#[tokio::test(start_paused = true)]
async fn a_trickle_under_the_minimum_rate_gets_408() {
    let limits = limits(1 << 16, 1 << 20);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            if tx.send(Bytes::from_static(b"a")).await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    });
    let result = read_limited(&limits, &parts(HeaderMap::new()), ChannelBody(rx)).await;
    assert!(matches!(result, Err(ApiError::BodyTooSlow)), "{result:?}");
    trickle.abort();
}

#[tokio::test]
async fn a_body_in_pieces_is_joined_and_a_body_whole_at_once_costs_no_budget() {
    let limits = limits(100, 8);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(Bytes::from_static(b"abc")).await.unwrap();
    tx.send(Bytes::from_static(b"def")).await.unwrap();
    drop(tx);
    let body = read_limited(&limits, &parts(HeaderMap::new()), ChannelBody(rx))
        .await
        .unwrap();
    assert_eq!(&body[..], b"abcdef");
    // Larger than the whole budget, but complete: it never waits.
    let body = http_body_util::Full::new(Bytes::from(vec![b'a'; 50]));
    assert_eq!(
        read_limited(&limits, &parts(HeaderMap::new()), body)
            .await
            .unwrap()
            .len(),
        50
    );
}

#[tokio::test]
async fn bodies_waiting_past_the_budget_get_503() {
    let limits = limits(100, 10);
    let (tx_a, rx_a) = tokio::sync::mpsc::channel(4);
    tx_a.send(Bytes::from_static(b"12345678")).await.unwrap();
    let waiting = tokio::spawn({
        let limits = limits.clone();
        async move { read_limited(&limits, &parts(HeaderMap::new()), ChannelBody(rx_a)).await }
    });
    while limits.budget.used() < 8 {
        tokio::task::yield_now().await;
    }
    let (tx_b, rx_b) = tokio::sync::mpsc::channel(4);
    tx_b.send(Bytes::from_static(b"12345")).await.unwrap();
    let result = read_limited(&limits, &parts(HeaderMap::new()), ChannelBody(rx_b)).await;
    assert!(
        matches!(result, Err(ApiError::BodyBufferFull)),
        "{result:?}"
    );
    drop(tx_a);
    assert_eq!(&waiting.await.unwrap().unwrap()[..], b"12345678");
    assert_eq!(limits.budget.used(), 0);
}

#[test]
fn all_returns_every_value_and_refuses_the_bad_ones() {
    let p = parse_form(b"audience=a&resource=r&audience=&audience=b").unwrap();
    assert_eq!(p.all("audience").unwrap(), ["a", "b"]);
    assert_eq!(p.all("resource").unwrap(), ["r"]);
    assert!(p.all("scope").unwrap().is_empty());
    let p = parse_form(b"audience=a&audience=b%01").unwrap();
    assert_eq!(p.all("audience").unwrap_err().code(), "invalid_request");
    let p = parse_json(br#"{"audience": 1}"#).unwrap();
    assert_eq!(p.all("audience").unwrap_err().code(), "invalid_request");
}
