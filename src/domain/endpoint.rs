//! Which scopes grant which endpoints: URL normalisation and the `[[scope]]`
//! endpoint patterns. A URL is parsed the WHATWG way (lower-case scheme and
//! host, default port dropped, dot segments resolved, userinfo separated from
//! the host), then unreserved percent-escapes are decoded; encoded slashes,
//! backslashes and NULs are refused so that no spelling of a path can reach
//! past a rule.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use url::Url;

use super::scope::ScopeSet;

/// An endpoint URL that cannot be judged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// Not an absolute http(s) URL with a host.
    #[error("endpoint_url must be an absolute http or https URL")]
    NotHttpUrl,
    /// Userinfo, an encoded slash, backslash or NUL, or invalid escapes.
    #[error("endpoint_url contains characters that hide its real path")]
    Ambiguous,
}

/// Characters escaped in canonical path segments: those a URL parser would
/// read as structure (`/ \\ ? # %`) or refuse, space and quotes.
const SEGMENT_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// A URL reduced to what access decisions depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedUrl {
    /// `http` or `https`.
    pub scheme: String,
    /// Lower-case host (IPv6 in brackets).
    pub host: String,
    /// Port, default filled in.
    pub port: u16,
    /// Decoded path segments (no empty trailing segment for `/a/`).
    pub segments: Vec<String>,
}

impl NormalizedUrl {
    /// The canonical text form, for tests and logs. Segments are
    /// re-escaped, so normalising this form again gives the same URL.
    pub fn to_canonical(&self) -> String {
        let mut out = format!("{}://{}:{}", self.scheme, self.host, self.port);
        if self.segments.is_empty() {
            out.push('/');
        }
        for segment in &self.segments {
            out.push('/');
            out.extend(utf8_percent_encode(segment, SEGMENT_ESCAPES));
        }
        out
    }
}

/// Normalises an endpoint URL. Query and fragment are ignored.
pub fn normalize_url(raw: &str) -> Result<NormalizedUrl, EndpointError> {
    if raw.len() > 4096 || raw.chars().any(|c| c.is_control()) {
        return Err(EndpointError::Ambiguous);
    }
    // WHATWG repairs `https:host`, `https:///host` and backslashes; we want
    // the literal form `scheme://host`, so what the caller meant is unambiguous.
    let (scheme, rest) = raw.split_once("://").ok_or(EndpointError::NotHttpUrl)?;
    if !scheme.bytes().all(|b| b.is_ascii_alphabetic()) || rest.starts_with(['/', '\\']) {
        return Err(EndpointError::NotHttpUrl);
    }
    if hides_its_path(raw_path(rest)) {
        return Err(EndpointError::Ambiguous);
    }
    let url = Url::parse(raw).map_err(|_| EndpointError::NotHttpUrl)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(EndpointError::NotHttpUrl);
    }
    if !url.username().is_empty() || url.password().is_some() {
        // `https://api.example.com@evil.test/` is a request to evil.test;
        // refuse the confusion outright.
        return Err(EndpointError::Ambiguous);
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or(EndpointError::NotHttpUrl)?
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let port = url
        .port_or_known_default()
        .ok_or(EndpointError::NotHttpUrl)?;
    let mut segments = Vec::new();
    for segment in url.path().split('/').skip(1) {
        segments.push(decode_segment(segment)?);
    }
    if segments.last().is_some_and(String::is_empty) {
        segments.pop();
    }
    Ok(NormalizedUrl {
        scheme: url.scheme().to_owned(),
        host,
        port,
        segments,
    })
}

/// The path as written: after the authority, before any query or fragment
/// (backslashes end the authority too, as WHATWG reads `http(s)` URLs).
fn raw_path(after_scheme: &str) -> &str {
    let start = after_scheme
        .find(['/', '\\', '?', '#'])
        .unwrap_or(after_scheme.len());
    let path = &after_scheme[start..];
    &path[..path.find(['?', '#']).unwrap_or(path.len())]
}

/// Spellings that hide the real path from us, checked before the parser
/// resolves dot segments: escaped separators or NULs, empty segments, and
/// empty or dot segments behind a `;` path parameter. In `/a/%2f/../b`,
/// `/a//../b` or `/a/..;/../b` the last `..` removes the evidence, yet a
/// server that decodes `%2f`, merges slashes or drops path parameters (`..;`
/// is `..` to some servlet containers) routes the request one level higher
/// than we judged it.
fn hides_its_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    let dot_with_parameter = |segment: &str| {
        let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
        decoded.contains(';') && matches!(decoded.split(';').next(), Some("" | "." | ".."))
    };
    ["%2f", "%5c", "%00"].iter().any(|e| lower.contains(e))
        || lower.replace('\\', "/").contains("//")
        || lower.split(['/', '\\']).any(dot_with_parameter)
}

/// Decodes percent-escapes in one path segment. Escapes of `/`, `\` and NUL
/// are refused: a server behind the rule might decode them into separators.
fn decode_segment(segment: &str) -> Result<String, EndpointError> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(EndpointError::Ambiguous)?;
            let value = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(EndpointError::Ambiguous)?;
            if matches!(value, b'/' | b'\\' | 0) {
                return Err(EndpointError::Ambiguous);
            }
            out.push(value);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let decoded = String::from_utf8(out).map_err(|_| EndpointError::Ambiguous)?;
    if decoded == "." || decoded == ".." {
        // Dot segments hidden behind escapes the parser did not resolve.
        return Err(EndpointError::Ambiguous);
    }
    Ok(decoded)
}

/// One segment of an endpoint pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternSegment {
    /// Must equal this decoded segment.
    Literal(String),
    /// `*`: exactly one segment.
    One,
    /// Trailing `**`: any rest, including nothing.
    Rest,
}

/// An endpoint pattern from `[[scope]] endpoints`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPattern {
    scheme: String,
    host: String,
    port: u16,
    segments: Vec<PatternSegment>,
}

impl EndpointPattern {
    /// Parses a pattern; `**` may only be the last segment.
    pub fn parse(pattern: &str) -> Result<Self, EndpointError> {
        let url = normalize_url(pattern)?;
        let last = url.segments.len().saturating_sub(1);
        let mut segments = Vec::with_capacity(url.segments.len());
        for (i, s) in url.segments.into_iter().enumerate() {
            segments.push(match s.as_str() {
                "*" => PatternSegment::One,
                "**" if i == last => PatternSegment::Rest,
                "**" => return Err(EndpointError::Ambiguous),
                _ => PatternSegment::Literal(s),
            });
        }
        Ok(Self {
            scheme: url.scheme,
            host: url.host,
            port: url.port,
            segments,
        })
    }

    /// Does the normalised URL fall under this pattern?
    pub fn matches(&self, url: &NormalizedUrl) -> bool {
        if self.scheme != url.scheme || self.host != url.host || self.port != url.port {
            return false;
        }
        let mut path = url.segments.iter();
        for segment in &self.segments {
            match segment {
                PatternSegment::Rest => return true,
                PatternSegment::One => {
                    if path.next().is_none() {
                        return false;
                    }
                }
                PatternSegment::Literal(literal) => {
                    if path.next() != Some(literal) {
                        return false;
                    }
                }
            }
        }
        path.next().is_none()
    }
}

/// A scope and the endpoints (and methods) it grants.
#[derive(Debug, Clone)]
pub struct EndpointRule {
    /// The scope token.
    pub scope: String,
    /// URL patterns.
    pub patterns: Vec<EndpointPattern>,
    /// Upper-case methods; empty means every method.
    pub methods: Vec<String>,
}

/// All configured rules.
#[derive(Debug, Clone, Default)]
pub struct ScopeRules {
    rules: Vec<EndpointRule>,
}

impl ScopeRules {
    /// Wraps compiled rules.
    pub fn new(rules: Vec<EndpointRule>) -> Self {
        Self { rules }
    }

    /// Decides whether `scopes` grant `method` on `url`. On refusal, returns
    /// the space-separated scopes that would (for `WWW-Authenticate`).
    pub fn authorize(
        &self,
        scopes: &ScopeSet,
        url: &NormalizedUrl,
        method: &str,
    ) -> Result<(), String> {
        let mut granting: Vec<&str> = self
            .rules
            .iter()
            .filter(|r| r.methods.is_empty() || r.methods.iter().any(|m| m == method))
            .filter(|r| r.patterns.iter().any(|p| p.matches(url)))
            .map(|r| r.scope.as_str())
            .collect();
        if granting.iter().any(|s| scopes.contains(s)) {
            return Ok(());
        }
        granting.sort_unstable();
        granting.dedup();
        Err(granting.join(" "))
    }
}

#[cfg(test)]
mod tests;
