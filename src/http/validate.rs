//! `POST {base}/oauth/validate`: is this bearer token good, and does it
//! grant `method` on `endpoint_url`? (RFC 6750 errors.) Callers are charged
//! to a validation bucket of their own (by address), never to the token's
//! client, and a refused token gets a bare `invalid_token`: why it was
//! refused goes to the access log and the metrics, not to the caller.

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use serde::Serialize;

use super::body::{body_kind, parse, read_limited};
use super::error::ApiError;
use super::response::{Body, CachePolicy, json};
use super::{LoggedReason, peer_ip};
use crate::domain::endpoint::normalize_url;
use crate::domain::error::OAuthError;
use crate::state::AppState;
use crate::validation::binding::{BindingError, Presentation, check_binding};

/// Method assumed when the request names none.
pub const DEFAULT_METHOD: &str = "GET";

/// The 200 body: the token's identity for the resource server.
#[derive(Serialize)]
struct ValidResponse<'a> {
    active: bool,
    client_id: &'a str,
    sub: &'a str,
    scope: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    jti: &'a str,
}

/// Validates the bearer token, then the endpoint if one is given.
pub async fn handle<B>(state: &AppState, request: Request<B>) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if let Some(ip) = peer_ip(&request) {
        state.limits.check_validate(ip)?;
    }
    let (parts, body) = request.into_parts();
    let bytes = read_limited(&state.body_limits, &parts, body).await?;
    let mut dpop_proof = None;
    let mut certificate_thumbprint = None;
    let target = if bytes.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let params = parse(body_kind(&parts.headers, false)?, &bytes)?;
        dpop_proof = params.single("dpop_proof")?.map(str::to_owned);
        certificate_thumbprint = params.single("certificate_thumbprint")?.map(str::to_owned);
        let method = match params.single("method")? {
            None => DEFAULT_METHOD.to_owned(),
            Some(m)
                if (1..=20).contains(&m.len()) && m.bytes().all(|b| b.is_ascii_alphabetic()) =>
            {
                m.to_ascii_uppercase()
            }
            Some(_) => {
                return Err(OAuthError::invalid_request("method is not an HTTP method").into());
            }
        };
        match params.single("endpoint_url")? {
            None => None,
            Some(url) => Some((
                normalize_url(url).map_err(|e| OAuthError::InvalidRequest(e.to_string().into()))?,
                method,
            )),
        }
    };

    let token = bearer_token(&parts.headers)?;
    let validated = match state.validate_token(token).await {
        Ok(validated) => validated,
        Err(rejection) => return Ok(refused(state, rejection.name())),
    };
    let claims = &validated.claims;
    let presented = Presentation {
        token,
        dpop_proof: dpop_proof.as_deref(),
        certificate_thumbprint: certificate_thumbprint.as_deref(),
        request: target.as_ref().map(|(url, method)| (method.as_str(), url)),
    };
    match check_binding(claims.cnf.as_ref(), &presented, &state.dpop, state.now()) {
        Ok(()) => {}
        Err(BindingError::ReplayWindowFull) => {
            return Err(OAuthError::TemporarilyUnavailable(
                "too many DPoP proofs at once; retry".into(),
            )
            .into());
        }
        Err(e) => return Ok(refused(state, e.name())),
    }
    if let Some((url, method)) = target {
        let scopes = crate::domain::scope::ScopeSet::parse(claims.scope.as_deref().unwrap_or(""))
            .unwrap_or_default();
        state
            .scope_rules
            .authorize(&scopes, &url, &method)
            .map_err(|required| OAuthError::InsufficientScope { required })?;
    }
    let body = serde_json::to_vec(&ValidResponse {
        active: true,
        client_id: &claims.client_id,
        sub: &claims.sub,
        scope: claims.scope.as_deref().unwrap_or(""),
        aud: &claims.aud,
        exp: claims.exp,
        iat: claims.iat,
        jti: &claims.jti,
    })
    .map_err(|_| OAuthError::ServerError)?;
    Ok(json(StatusCode::OK, body, CachePolicy::NoStore))
}

/// The `invalid_token` answer to a refused token, counted by `reason` and
/// with the reason for the access log.
fn refused(state: &AppState, reason: &'static str) -> Response<Body> {
    state
        .metrics
        .validation_rejections
        .with_label_values(&[reason])
        .inc();
    let mut response = ApiError::from(invalid_token()).into_response();
    response.extensions_mut().insert(LoggedReason(reason));
    response
}

/// The RFC 6750 `invalid_token` error for any refused token: the same for
/// every reason, so an unauthenticated caller learns nothing about a token
/// it should not hold.
pub fn invalid_token() -> OAuthError {
    OAuthError::InvalidToken("the access token is not valid".into())
}

/// Extracts the token from `Authorization: Bearer <token>` (RFC 6750 2.1),
/// or `Authorization: DPoP <token>` as a resource server received it
/// (RFC 9449 7.1).
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, OAuthError> {
    let missing = || OAuthError::InvalidToken("a bearer token is required".into());
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let value = values.next().ok_or_else(missing)?;
    if values.next().is_some() {
        return Err(OAuthError::invalid_request(
            "Authorization header is repeated",
        ));
    }
    // One pass over the bytes: `b64token` characters are visible ASCII, so
    // checking them is all the checking the value needs.
    let value = value.as_bytes();
    let space = value.iter().position(|&b| b == b' ').ok_or_else(missing)?;
    let (scheme, token) = (&value[..space], trim_spaces(&value[space + 1..]));
    if !(scheme.eq_ignore_ascii_case(b"bearer") || scheme.eq_ignore_ascii_case(b"dpop"))
        || token.is_empty()
        || !token.iter().all(|&b| B64TOKEN[usize::from(b)])
    {
        return Err(missing());
    }
    std::str::from_utf8(token).map_err(|_| missing())
}

/// `bytes` without leading and trailing spaces (only spaces: a tab stays and
/// is refused as a token character).
fn trim_spaces(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != b' ').unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| b != b' ')
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// RFC 6750 `b64token` characters: `ALPHA / DIGIT / "-" / "." / "_" / "~" /
/// "+" / "/" / "="`, as a table: this runs over every byte of every token.
const B64TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=');
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn auth(value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(
            bearer_token(&auth("Bearer abc.def.ghi")).unwrap(),
            "abc.def.ghi"
        );
        assert_eq!(bearer_token(&auth("bearer abc")).unwrap(), "abc");
        assert_eq!(bearer_token(&auth("DPoP abc")).unwrap(), "abc");
        for bad in [
            "Bearer",
            "Bearer ",
            "Basic abc",
            "Bearer a b",
            "Bearer a\"b",
            "Bearer \tabc",
            "Bearer abc\t",
            "abc",
        ] {
            assert_eq!(
                bearer_token(&auth(bad)).unwrap_err().code(),
                "invalid_token",
                "{bad}"
            );
        }
        assert_eq!(
            bearer_token(&HeaderMap::new()).unwrap_err().code(),
            "invalid_token"
        );
    }
}
