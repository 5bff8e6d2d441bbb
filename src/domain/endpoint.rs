//! Which scopes grant which endpoints: URL normalisation and the `[[scope]]`
//! endpoint patterns.
//!
//! A URL is parsed the WHATWG way (lower-case scheme and host, default port
//! dropped, dot segments resolved, userinfo separated from the host). In the
//! path, escapes of unreserved characters (RFC 3986: `A-Z a-z 0-9 - . _ ~`)
//! are decoded and every other escape is kept with upper-case hex, so each
//! segment has one spelling.
//!
//! Backends read paths in other ways: some decode twice, apply Unicode NFKC,
//! take `\` for `/`, merge slashes, trim spaces or drop `;` parameters. So
//! that no reading reaches past a rule, a path is refused when, as written
//! (before the parser resolves `..` and removes the evidence), it contains:
//! - an escape that is not `%` and two hex digits (`%zz`, `%u002e`), or
//!   escapes that do not decode to UTF-8 (the overlong dot `%C0%AE`);
//! - an escaped `%`, `/` or `\` (`%25`, `%2F`, `%5C`): `%252e` is `.` to a
//!   backend that decodes twice;
//! - a control character, raw or escaped (`%00`, `%09`);
//! - raw or escaped, a character that NFKC maps to text with `.`, `/`, `\`
//!   or `%` (U+FF0E FULLWIDTH FULL STOP, U+2025 TWO DOT LEADER...), a slash
//!   lookalike (U+2215 DIVISION SLASH...) or an invisible default-ignorable
//!   character;
//! - an empty segment, or one of only dots and whitespace (`...`, `.. `,
//!   `%20`) other than the `.` and `..` the parser resolves;
//! - a `;` parameter behind an empty or dot segment (`..;`).
//!
//! What passes has no escape left that stands for a dot, a separator or a
//! percent, so decoding it again or normalising it changes no structure.

use url::Url;

use super::scope::ScopeSet;

mod lookalike;

/// An endpoint URL that cannot be judged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// Not an absolute http(s) URL with a host.
    #[error("endpoint_url must be an absolute http or https URL")]
    NotHttpUrl,
    /// Userinfo, or a path a backend could read differently: see the module
    /// documentation for the spellings refused.
    #[error("endpoint_url contains characters that hide its real path")]
    Ambiguous,
}

/// A URL reduced to what access decisions depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedUrl {
    /// `http` or `https`.
    pub scheme: String,
    /// Lower-case host (IPv6 in brackets).
    pub host: String,
    /// Port, default filled in.
    pub port: u16,
    /// Path segments with unreserved escapes decoded and the other escapes
    /// in upper-case hex (no empty trailing segment for `/a/`).
    pub segments: Vec<String>,
}

impl NormalizedUrl {
    /// The canonical text form, for tests and logs. Normalising this form
    /// again gives the same URL.
    pub fn to_canonical(&self) -> String {
        let mut out = format!("{}://{}:{}", self.scheme, self.host, self.port);
        if self.segments.is_empty() {
            out.push('/');
        }
        for segment in &self.segments {
            out.push('/');
            out.push_str(segment);
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
    let mut raw_segments: Vec<&str> = url.path().split('/').skip(1).collect();
    if raw_segments.last() == Some(&"") {
        raw_segments.pop();
    }
    let mut segments = Vec::with_capacity(raw_segments.len());
    for raw_segment in raw_segments {
        let segment = read_segment(raw_segment)?;
        // The parser resolved every dot segment it saw; one left here (or an
        // empty one) came from a spelling it did not take for one.
        if dot_like(&segment.decoded) {
            return Err(EndpointError::Ambiguous);
        }
        segments.push(segment.canonical);
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

/// Whether the path as written, before the parser resolves dot segments,
/// holds a spelling refused by the rules in the module documentation. In
/// `/a/%2f/../b`, `/a//../b` or `/a/..;/../b` the last `..` removes the
/// evidence, yet a server that decodes `%2f`, merges slashes or drops path
/// parameters (`..;` is `..` to some servlet containers) routes the request
/// one level higher than we judged it.
fn hides_its_path(path: &str) -> bool {
    if path.replace('\\', "/").contains("//") {
        return true;
    }
    // The path starts with its first separator; what precedes it is no segment.
    path.split(['/', '\\'])
        .skip(1)
        .any(|raw| match read_segment(raw) {
            Err(_) => true,
            Ok(segment) => {
                // "" can only be the last segment here (`//` is refused).
                let resolved_by_parser = matches!(segment.decoded.as_str(), "" | "." | "..");
                (dot_like(&segment.decoded) && !resolved_by_parser)
                    || dot_with_parameter(&segment.decoded)
            }
        })
}

/// A segment made of dots and whitespace only, or empty: a backend that
/// trims whitespace may take it for `.`, `..` or an empty segment.
fn dot_like(decoded: &str) -> bool {
    decoded.chars().all(|c| c == '.' || c.is_whitespace())
}

/// A `;` path parameter behind an empty or dot segment: `..;x` is `..` to
/// servers that drop parameters.
fn dot_with_parameter(decoded: &str) -> bool {
    decoded
        .split_once(';')
        .is_some_and(|(before, _)| dot_like(before))
}

/// One path segment in the two forms the checks need.
struct Segment {
    /// Unreserved escapes decoded, the others kept in upper-case hex.
    canonical: String,
    /// Every escape decoded.
    decoded: String,
}

/// Reads one path segment, refusing escapes and characters that a backend
/// could take for structure (see the module documentation).
fn read_segment(raw: &str) -> Result<Segment, EndpointError> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut canonical = String::with_capacity(raw.len());
    let mut decoded = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('%') {
        canonical.push_str(&rest[..at]);
        decoded.extend_from_slice(&rest.as_bytes()[..at]);
        let value = rest
            .get(at + 1..at + 3)
            .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .ok_or(EndpointError::Ambiguous)?;
        if matches!(value, b'%' | b'/' | b'\\') {
            return Err(EndpointError::Ambiguous);
        }
        if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
            canonical.push(char::from(value));
        } else {
            canonical.push('%');
            canonical.push(char::from(HEX[usize::from(value >> 4)]));
            canonical.push(char::from(HEX[usize::from(value & 0xF)]));
        }
        decoded.push(value);
        rest = &rest[at + 3..];
    }
    canonical.push_str(rest);
    decoded.extend_from_slice(rest.as_bytes());
    let decoded = String::from_utf8(decoded).map_err(|_| EndpointError::Ambiguous)?;
    let hidden =
        |c: char| c.is_control() || lookalike::reads_as_structure(c) || lookalike::is_ignorable(c);
    if decoded.chars().any(hidden) {
        return Err(EndpointError::Ambiguous);
    }
    Ok(Segment { canonical, decoded })
}

/// One segment of an endpoint pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternSegment {
    /// Must equal this segment (in the canonical form of `NormalizedUrl`).
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
