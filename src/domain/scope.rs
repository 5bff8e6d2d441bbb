//! Scopes: parsing the space-separated `scope` parameter (RFC 6749 3.3) and
//! deciding which scopes a client is granted.

use std::fmt;

use super::error::OAuthError;

/// A set of scope tokens, sorted and without duplicates so that equal sets
/// print identically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(Vec<String>);

/// A scope string that breaks RFC 6749 3.3 syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed scope token")]
pub struct MalformedScope;

/// RFC 6749 3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_char(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)
}

impl ScopeSet {
    /// Parses a space-separated list. Empty input is the empty set; a
    /// character outside the RFC grammar, or runs of spaces, are errors.
    pub fn parse(input: &str) -> Result<Self, MalformedScope> {
        if input.is_empty() {
            return Ok(Self::default());
        }
        let mut tokens = Vec::new();
        for token in input.split(' ') {
            if token.is_empty() || !token.bytes().all(is_scope_char) {
                return Err(MalformedScope);
            }
            tokens.push(token.to_owned());
        }
        Ok(Self::from_tokens(tokens))
    }

    /// Builds a set from tokens already known to be valid.
    fn from_tokens(mut tokens: Vec<String>) -> Self {
        tokens.sort_unstable();
        tokens.dedup();
        Self(tokens)
    }

    /// True when there are no scopes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over the scope tokens in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// True when `scope` is in the set.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.binary_search_by(|s| s.as_str().cmp(scope)).is_ok()
    }

    /// The scopes in both `self` and `other`.
    pub fn intersection(&self, other: &ScopeSet) -> ScopeSet {
        Self(
            self.0
                .iter()
                .filter(|s| other.contains(s))
                .cloned()
                .collect(),
        )
    }

    /// True when every scope of `self` is in `other`.
    pub fn is_subset_of(&self, other: &ScopeSet) -> bool {
        self.iter().all(|s| other.contains(s))
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

/// Decides the scopes of a token: the requested ones if the client may have
/// all of them, else `invalid_scope`; the client's defaults when none were
/// requested (RFC 6749 3.3).
pub fn grant_scopes(
    requested: Option<&str>,
    allowed: &ScopeSet,
    defaults: &ScopeSet,
) -> Result<ScopeSet, OAuthError> {
    let Some(requested) = requested else {
        return Ok(defaults.clone());
    };
    let requested = ScopeSet::parse(requested)
        .map_err(|_| OAuthError::InvalidScope("the scope parameter is malformed".into()))?;
    if requested.is_empty() {
        return Ok(defaults.clone());
    }
    if requested.is_subset_of(allowed) {
        Ok(requested)
    } else {
        Err(OAuthError::InvalidScope(
            "a requested scope is not allowed for this client".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> ScopeSet {
        ScopeSet::parse(s).unwrap()
    }

    #[test]
    fn parse_sorts_and_dedups() {
        assert_eq!(set("b a b").to_string(), "a b");
        assert!(set("").is_empty());
        assert!(set("read").contains("read"));
        assert!(!set("read").contains("rea"));
    }

    #[test]
    fn parse_rejects_bad_syntax() {
        for bad in [" a", "a ", "a  b", "a\"b", "a\\b", "a\tb", "ä", "a\u{7f}"] {
            assert_eq!(ScopeSet::parse(bad), Err(MalformedScope), "{bad:?}");
        }
        assert!(ScopeSet::parse("api:read users/*.write !#$").is_ok());
    }

    #[test]
    fn grant_uses_defaults_when_nothing_requested() {
        let allowed = set("read write admin");
        let defaults = set("read");
        assert_eq!(grant_scopes(None, &allowed, &defaults).unwrap(), defaults);
        assert_eq!(
            grant_scopes(Some(""), &allowed, &defaults).unwrap(),
            defaults
        );
    }

    #[test]
    fn grant_allows_subsets_and_refuses_others() {
        let allowed = set("read write");
        let defaults = set("read");
        assert_eq!(
            grant_scopes(Some("write read"), &allowed, &defaults).unwrap(),
            set("read write")
        );
        let err = grant_scopes(Some("read admin"), &allowed, &defaults).unwrap_err();
        assert_eq!(err.code(), "invalid_scope");
        let err = grant_scopes(Some("read  write"), &allowed, &defaults).unwrap_err();
        assert_eq!(err.code(), "invalid_scope");
    }

    #[test]
    fn subset() {
        assert!(set("a").is_subset_of(&set("a b")));
        assert!(!set("a c").is_subset_of(&set("a b")));
        assert!(set("").is_subset_of(&set("")));
    }
}
