//! Workload identity federation, the pure part: which external tokens are
//! acceptable from a trusted issuer, and which client a verified external
//! subject maps to. A client lists federated subjects per trusted issuer:
//! an exact `sub`, or a pattern where `*` stands for exactly one segment.
//!
//! Segments: a `spiffe://` subject is split on `/` (the trust domain and
//! each path element are segments); any other subject on `:` (so
//! `system:serviceaccount:payments:*` matches every service account of the
//! namespace `payments`, and nothing in a namespace below it). A `*`
//! matches one non-empty segment; the pattern and the subject have the same
//! number of segments.

use std::collections::HashMap;

use super::assertion::AssertionError;
use super::signed_jwt::{SignedJwt, TimeRules, check_audience, check_times};
use crate::keys::public::VerifyAlgorithm;

/// Longest external token even looked at, in bytes. A Kubernetes
/// service-account token or a JWT-SVID is one to two KiB.
pub const MAX_EXTERNAL_TOKEN_LEN: usize = 16 * 1024;

/// Longest `sub` accepted from an external token, and longest pattern.
pub const MAX_SUBJECT_LEN: usize = 1024;

/// Most federated subjects one client may list.
pub const MAX_SUBJECTS_PER_CLIENT: usize = 100;

/// The `grant_type` of RFC 7523 2.1: a JWT as an authorization grant.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A client's federated subject: tokens of `issuer` (a trusted issuer's
/// name) whose `sub` matches `subject` map to `client_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FederatedSubject {
    /// Our client.
    pub client_id: String,
    /// The trusted issuer's name, as configured.
    pub issuer: String,
    /// An exact `sub`, or a pattern with `*` segments.
    pub subject: String,
}

/// Why a subject pattern was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Empty, too long, or with spaces or control characters.
    #[error("a subject is 1 to {MAX_SUBJECT_LEN} printable characters without spaces")]
    Form,
    /// A `*` that is not a whole segment, or an empty segment.
    #[error("'*' must be a whole segment (between ':' or '/'), and no segment may be empty")]
    Wildcard,
}

/// True for a `spiffe://` subject, split on `/`; others split on `:`.
fn separator(subject: &str) -> char {
    if subject.starts_with("spiffe://") {
        '/'
    } else {
        ':'
    }
}

/// The segments of a subject or pattern. In a SPIFFE ID the scheme's
/// `spiffe:` and the empty segment of `//` are left out.
fn segments(subject: &str) -> impl Iterator<Item = &str> {
    let (rest, sep) = match subject.strip_prefix("spiffe://") {
        Some(rest) => (rest, '/'),
        None => (subject, separator(subject)),
    };
    rest.split(sep)
}

/// Refuses a pattern that could never match as written.
pub fn check_pattern(pattern: &str) -> Result<(), PatternError> {
    if pattern.is_empty()
        || pattern.len() > MAX_SUBJECT_LEN
        || pattern.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(PatternError::Form);
    }
    if segments(pattern).any(|s| s.is_empty() || (s.contains('*') && s != "*")) {
        return Err(PatternError::Wildcard);
    }
    Ok(())
}

/// Does `subject` match `pattern`? Segment by segment: equal, or `*` for
/// any one non-empty segment. A SPIFFE pattern matches SPIFFE IDs only.
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == subject;
    }
    if separator(pattern) != separator(subject) {
        return false;
    }
    let mut subject_segments = segments(subject);
    for p in segments(pattern) {
        match subject_segments.next() {
            Some(s) if p == "*" && !s.is_empty() => {}
            Some(s) if p == s => {}
            _ => return false,
        }
    }
    subject_segments.next().is_none()
}

/// The client a subject maps to, if exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectMatch {
    /// No client lists a matching subject.
    None,
    /// Exactly this client.
    One(String),
    /// More than one client: ambiguous, refused.
    Many,
}

/// The federated subjects, indexed for lookup: exact subjects by value,
/// patterns by issuer, number of segments and the literal segments before
/// their first `*`. A lookup probes one map per possible prefix length of
/// the subject (a handful), whatever the number of clients.
#[derive(Debug, Clone, Default)]
pub struct SubjectTable {
    by_issuer: HashMap<String, IssuerSubjects>,
}

#[derive(Debug, Clone, Default)]
struct IssuerSubjects {
    /// Exact subject -> clients.
    exact: HashMap<String, Vec<String>>,
    /// (segments, literal segments before the first `*`) -> patterns.
    patterns: HashMap<(usize, usize), PatternsByPrefix>,
}

/// The literal text before a pattern's first `*` -> (pattern, client).
type PatternsByPrefix = HashMap<String, Vec<(String, String)>>;

/// The text up to the end of the first `k` segments of `text`.
fn prefix(text: &str, k: usize) -> &str {
    let start = if text.starts_with("spiffe://") {
        "spiffe://".len()
    } else {
        0
    };
    let sep = separator(text);
    if k == 0 {
        return &text[..start];
    }
    let end = text[start..]
        .match_indices(sep)
        .nth(k - 1)
        .map_or(text.len(), |(i, _)| start + i);
    &text[..end]
}

impl SubjectTable {
    /// Indexes `subjects`.
    pub fn new<'a>(subjects: impl IntoIterator<Item = &'a FederatedSubject>) -> Self {
        let mut by_issuer: HashMap<String, IssuerSubjects> = HashMap::new();
        for s in subjects {
            let table = by_issuer.entry(s.issuer.clone()).or_default();
            let wildcard = segments(&s.subject).position(|seg| seg == "*");
            match wildcard {
                None => table
                    .exact
                    .entry(s.subject.clone())
                    .or_default()
                    .push(s.client_id.clone()),
                Some(k) => table
                    .patterns
                    .entry((segments(&s.subject).count(), k))
                    .or_default()
                    .entry(prefix(&s.subject, k).to_owned())
                    .or_default()
                    .push((s.subject.clone(), s.client_id.clone())),
            }
        }
        Self { by_issuer }
    }

    /// The clients whose federated subjects of `issuer` match `sub`.
    pub fn lookup(&self, issuer: &str, sub: &str) -> SubjectMatch {
        let Some(table) = self.by_issuer.get(issuer) else {
            return SubjectMatch::None;
        };
        let exact = table.exact.get(sub).into_iter().flatten();
        let n = segments(sub).count();
        let by_pattern = (0..n)
            .filter_map(|k| table.patterns.get(&(n, k))?.get(prefix(sub, k)))
            .flatten()
            .filter(|(pattern, _)| subject_matches(pattern, sub))
            .map(|(_, client)| client);
        let mut clients = exact.chain(by_pattern);
        match clients.next() {
            None => SubjectMatch::None,
            Some(first) if clients.any(|c| c != first) => SubjectMatch::Many,
            Some(first) => SubjectMatch::One(first.clone()),
        }
    }
}

/// What an external token is held to by its issuer.
#[derive(Debug, Clone, Copy)]
pub struct ExternalRules<'a> {
    /// The algorithms accepted from the issuer.
    pub algorithms: &'a [VerifyAlgorithm],
    /// The audience we require.
    pub audience: &'a str,
    /// Seconds of clock skew allowed.
    pub leeway_secs: i64,
    /// Oldest accepted, seconds since `iat`.
    pub max_age_secs: i64,
}

/// Why an external token was refused; all `invalid_grant` to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExternalTokenError {
    /// The form, signature or a time or audience claim is wrong.
    #[error(transparent)]
    Token(#[from] AssertionError),
    /// `iss` names no trusted issuer.
    #[error("iss is not a trusted issuer")]
    UnknownIssuer,
    /// `sub` is missing, empty or too long.
    #[error("sub is missing or too long")]
    Subject,
    /// The issuer's keys could not be had (never fetched successfully).
    #[error("the issuer's keys are unavailable")]
    KeysUnavailable,
    /// No client lists a matching subject.
    #[error("the subject maps to no client")]
    Unmapped,
    /// More than one client lists a matching subject.
    #[error("the subject maps to more than one client")]
    Ambiguous,
}

impl ExternalTokenError {
    /// A short reason for the log (names no claim value or key).
    pub fn reason(self) -> &'static str {
        match self {
            Self::Token(AssertionError::TooLarge) => "too large",
            Self::Token(AssertionError::Malformed) => "malformed",
            Self::Token(AssertionError::Algorithm) => "algorithm not accepted",
            Self::Token(AssertionError::Audience) => "wrong aud",
            Self::Token(AssertionError::MissingExp) => "no exp",
            Self::Token(AssertionError::Expired) => "expired",
            Self::Token(AssertionError::NotYetValid) => "iat or nbf in the future",
            Self::Token(AssertionError::TooLong | AssertionError::TooOld) => "too old",
            Self::Token(AssertionError::UnknownKey) => "kid not in the issuer's keys",
            Self::Token(AssertionError::Signature) => "bad signature",
            Self::Token(_) => "refused",
            Self::UnknownIssuer => "unknown iss",
            Self::Subject => "no sub",
            Self::KeysUnavailable => "issuer keys unavailable",
            Self::Unmapped => "subject maps to no client",
            Self::Ambiguous => "subject maps to several clients",
        }
    }
}

/// What the claims of an external token that passed
/// [`check_external_claims`] say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExternalClaims<'t> {
    /// `sub`.
    pub sub: &'t str,
    /// Unix time from which the token is refused: expired, or older than
    /// the issuer's maximum age (leeway included).
    pub refused_from: i64,
}

/// Checks the claims of an external token of a known issuer (everything
/// but the signature): the algorithm is one the issuer may use, `aud`
/// holds ours, the times are right and `sub` is present.
pub fn check_external_claims<'t>(
    jwt: &'t SignedJwt,
    rules: &ExternalRules<'_>,
    now: i64,
) -> Result<ExternalClaims<'t>, ExternalTokenError> {
    if !rules.algorithms.contains(&jwt.alg()) {
        return Err(AssertionError::Algorithm.into());
    }
    check_audience(jwt.claims().get("aud"), &[rules.audience])?;
    let times = TimeRules {
        leeway_secs: rules.leeway_secs,
        max_lifetime_secs: None,
        max_age_secs: Some(rules.max_age_secs),
    };
    let times = check_times(jwt.claims(), &times, now)?;
    let expires = times.exp.saturating_add(rules.leeway_secs);
    // Without `iat` the age rule looks at `exp`, which only gets nearer.
    let too_old = times.iat.map_or(i64::MAX, |iat| {
        iat.saturating_add(rules.max_age_secs)
            .saturating_add(rules.leeway_secs)
            .saturating_add(1)
    });
    match jwt.text_claim("sub") {
        Some(sub) if !sub.is_empty() && sub.len() <= MAX_SUBJECT_LEN => Ok(ExternalClaims {
            sub,
            refused_from: expires.min(too_old),
        }),
        _ => Err(ExternalTokenError::Subject),
    }
}

#[cfg(test)]
mod tests;
