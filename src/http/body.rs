//! Request bodies: reading within size, time and memory limits, and strict
//! parsing of `application/x-www-form-urlencoded` and `application/json`
//! into named string parameters. A repeated parameter is kept so callers can refuse it
//! (RFC 6749 3.2: parameters MUST NOT be included more than once).

use std::fmt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use serde::de::{Deserializer, MapAccess, Visitor};
use tokio::time::Instant;

use super::error::ApiError;
use crate::activity::ConnectionActivity;
use crate::domain::error::OAuthError;
use crate::limit::body::BodyLimits;

/// Reads the whole body within `limits`: more than `max_bytes` is 413 (a
/// declared `Content-Length` over it is refused before reading anything), a
/// body that misses its deadline or falls under the minimum rate is 408, and
/// one that would hold more than the server-wide budget while it waits is
/// 503. While the read waits, the connection counts as waiting on its
/// client, for the idle timer and for shedding under pressure.
pub async fn read_limited<B>(
    limits: &BodyLimits,
    parts: &http::request::Parts,
    body: B,
) -> Result<Bytes, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limits.max_bytes as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    let waiting = parts
        .extensions
        .get::<Arc<ConnectionActivity>>()
        .map(|activity| activity.awaiting_client());
    let started = Instant::now();
    let mut share = limits.budget.share();
    let mut body = std::pin::pin!(body);
    // Most bodies arrive in one frame: keep it without copying.
    let mut first: Option<Bytes> = None;
    let mut rest = BytesMut::new();
    let mut received = 0usize;
    loop {
        let frame = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx));
        let frame =
            match tokio::time::timeout_at(limits.next_byte_due(started, received), frame).await {
                Ok(Some(Ok(frame))) => frame,
                Ok(None) => break,
                Ok(Some(Err(_))) => {
                    return Err(
                        OAuthError::invalid_request("the request body could not be read").into(),
                    );
                }
                Err(_) => return Err(ApiError::BodyTooSlow),
            };
        let Ok(data) = frame.into_data() else {
            continue; // trailers: nothing we use
        };
        if let Some(waiting) = &waiting {
            waiting.progressed();
        }
        received += data.len();
        if received > limits.max_bytes {
            return Err(ApiError::PayloadTooLarge);
        }
        // Held across the next wait: it must fit in the budget.
        if !body.is_end_stream() && !share.cover(received) {
            return Err(ApiError::BodyBufferFull);
        }
        match &first {
            None if rest.is_empty() => first = Some(data),
            _ => {
                if let Some(first) = first.take() {
                    rest.extend_from_slice(&first);
                }
                rest.extend_from_slice(&data);
            }
        }
    }
    Ok(match first {
        Some(first) => first,
        None => rest.freeze(),
    })
}

/// Reads and parses the body of a form/JSON endpoint; returns the request
/// head and the parameters.
pub async fn read_params<B>(
    request: http::Request<B>,
    limits: &BodyLimits,
) -> Result<(http::request::Parts, Params), ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (parts, body) = request.into_parts();
    let bytes = read_limited(limits, &parts, body).await?;
    let params = parse(body_kind(&parts.headers, bytes.is_empty())?, &bytes)?;
    Ok((parts, params))
}

/// The media types we accept on form endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `application/json`.
    Json,
}

/// Decides how to parse the body from `Content-Type`. A missing type is
/// accepted only for an empty body.
pub fn body_kind(headers: &HeaderMap, body_is_empty: bool) -> Result<BodyKind, OAuthError> {
    let Some(value) = headers.get(http::header::CONTENT_TYPE) else {
        return if body_is_empty {
            Ok(BodyKind::Form)
        } else {
            Err(OAuthError::invalid_request("Content-Type is required"))
        };
    };
    let media_type = value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match media_type.as_deref() {
        Some("application/x-www-form-urlencoded") => Ok(BodyKind::Form),
        Some("application/json") => Ok(BodyKind::Json),
        _ => Err(OAuthError::invalid_request(
            "Content-Type must be application/x-www-form-urlencoded or application/json",
        )),
    }
}

/// Parameters in arrival order, repeats included. A value of `None` came
/// from a JSON value that is not a string.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params(Vec<(String, Option<String>)>);

impl Params {
    /// The value of `name`. `invalid_request` if it appears more than once,
    /// is not a string, or holds a control character. An empty value counts
    /// as absent (RFC 6749 3.1).
    pub fn single(&self, name: &str) -> Result<Option<&str>, OAuthError> {
        let mut found = self.0.iter().filter(|(k, _)| k == name);
        let first = found.next();
        if found.next().is_some() {
            return Err(invalid_param(name, "is repeated"));
        }
        first.map_or(Ok(None), |(_, value)| checked(name, value.as_deref()))
    }

    /// Every value of `name`, in order, for a parameter that may repeat
    /// (RFC 8693 `audience` and `resource`). `invalid_request` if one is
    /// not a string or holds a control character; empty values count as
    /// absent.
    pub fn all(&self, name: &str) -> Result<Vec<&str>, OAuthError> {
        let mut values = Vec::new();
        for (_, value) in self.0.iter().filter(|(k, _)| k == name) {
            values.extend(checked(name, value.as_deref())?);
        }
        Ok(values)
    }
}

fn invalid_param(name: &str, what: &str) -> OAuthError {
    OAuthError::InvalidRequest(format!("parameter {name} {what}").into())
}

/// One value of the parameter `name`: a string without control characters,
/// `None` when empty.
fn checked<'a>(name: &str, value: Option<&'a str>) -> Result<Option<&'a str>, OAuthError> {
    match value {
        None => Err(invalid_param(name, "must be a string")),
        Some(v) if v.chars().any(char::is_control) => {
            Err(invalid_param(name, "has an invalid character"))
        }
        Some(v) => Ok(Some(v).filter(|v| !v.is_empty())),
    }
}

/// Parses a body of the given kind.
pub fn parse(kind: BodyKind, body: &[u8]) -> Result<Params, OAuthError> {
    match kind {
        BodyKind::Form => parse_form(body),
        BodyKind::Json => parse_json(body),
    }
}

/// Parses `application/x-www-form-urlencoded`. Invalid UTF-8, raw or
/// percent-encoded, is refused rather than silently replaced.
pub fn parse_form(body: &[u8]) -> Result<Params, OAuthError> {
    let malformed = || OAuthError::invalid_request("the form body is not valid UTF-8");
    std::str::from_utf8(body).map_err(|_| malformed())?;
    let mut pairs = Vec::new();
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let name = form_decode(name).ok_or_else(malformed)?;
        let value = form_decode(value).ok_or_else(malformed)?;
        pairs.push((name, Some(value)));
    }
    Ok(Params(pairs))
}

/// Decodes one form component: `+` is a space, `%XX` a byte; the result
/// must be UTF-8.
pub fn form_decode(component: &[u8]) -> Option<String> {
    let plus_as_space: Vec<u8> = component
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    let bytes: Vec<u8> = percent_encoding::percent_decode(&plus_as_space).collect();
    String::from_utf8(bytes).ok()
}

/// Parses a JSON object. Values that are not strings are kept as `None` so
/// they can be refused by name; duplicate keys are preserved, not collapsed.
pub fn parse_json(body: &[u8]) -> Result<Params, OAuthError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let params = de
        .deserialize_map(ParamsVisitor)
        .and_then(|p| de.end().map(|()| p))
        .map_err(|_| OAuthError::invalid_request("the body is not a valid JSON object"))?;
    Ok(params)
}

struct ParamsVisitor;

impl<'de> Visitor<'de> for ParamsVisitor {
    type Value = Params;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Params, A::Error> {
        let mut pairs = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
            let value = match value {
                serde_json::Value::String(s) => Some(s),
                _ => None,
            };
            pairs.push((key, value));
        }
        Ok(Params(pairs))
    }
}

#[cfg(test)]
mod tests;
