//! The `[federation]` table and its `[[federation.issuer]]` entries: the
//! outside token issuers (a Kubernetes cluster, a SPIFFE trust domain)
//! whose JWTs a workload may exchange for one of our tokens.

use serde::{Deserialize, Serialize};

use crate::keys::public::VerifyAlgorithm;

/// Workload identity federation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FederationConfig {
    /// Seconds of clock skew allowed on an external token's `exp`, `iat`
    /// and `nbf`.
    pub leeway_secs: i64,
    /// Seconds the federated subjects read from the store are used before
    /// they are read again (a change seen on the change feed, or a subject
    /// that matches no client, reads them sooner).
    pub subjects_refresh_secs: u64,
    /// The trusted issuers.
    #[serde(rename = "issuer")]
    pub issuers: Vec<TrustedIssuerConfig>,
}

impl Default for FederationConfig {
    fn default() -> Self {
        Self {
            leeway_secs: 30,
            subjects_refresh_secs: 30,
            issuers: Vec::new(),
        }
    }
}

/// One trusted issuer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuerConfig {
    /// Short name: what federated subjects, metrics and the CLI call it.
    pub name: String,
    /// The issuer identifier: the exact `iss` of its tokens.
    pub issuer: String,
    /// Where its JWK Set is; empty: read from
    /// `{issuer}/.well-known/openid-configuration` (OpenID Connect
    /// discovery, as a Kubernetes API server publishes it).
    #[serde(default)]
    pub jwks_uri: String,
    /// The audience its tokens must carry to be accepted by us.
    pub audience: String,
    /// The JWS algorithms accepted from it.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Oldest token accepted, in seconds since its `iat` (or, without
    /// `iat`, longest remaining lifetime).
    #[serde(default = "default_max_token_age")]
    pub max_token_age_secs: i64,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into()]
}

fn default_max_token_age() -> i64 {
    3_600
}

/// Longest issuer name, in bytes.
pub const MAX_ISSUER_NAME_LEN: usize = 64;

/// Is `name` acceptable as a trusted issuer's name? Lower-case letters,
/// digits, `-` and `_`: it appears in metric labels and CLI arguments.
pub fn is_valid_issuer_name(name: &str) -> bool {
    (1..=MAX_ISSUER_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'))
}

impl TrustedIssuerConfig {
    /// The accepted algorithms, parsed (names are checked at start).
    pub fn verify_algorithms(&self) -> Vec<VerifyAlgorithm> {
        self.algorithms
            .iter()
            .filter_map(|a| VerifyAlgorithm::from_name(a))
            .collect()
    }
}

impl FederationConfig {
    /// Refuses unusable issuers; the message names the issuer and the
    /// setting.
    pub(super) fn check(&self) -> Result<(), String> {
        if !(0..=300).contains(&self.leeway_secs) {
            return Err("federation.leeway_secs must be between 0 and 300".into());
        }
        if !(1..=3_600).contains(&self.subjects_refresh_secs) {
            return Err("federation.subjects_refresh_secs must be between 1 and 3600".into());
        }
        for (i, issuer) in self.issuers.iter().enumerate() {
            let at = format!("[[federation.issuer]] {:?}", issuer.name);
            if !is_valid_issuer_name(&issuer.name) {
                return Err(format!(
                    "[[federation.issuer]] number {}: name must be 1 to {MAX_ISSUER_NAME_LEN} \
                     characters of a-z, 0-9, '-' and '_'",
                    i + 1
                ));
            }
            if self.issuers[..i].iter().any(|o| o.name == issuer.name) {
                return Err(format!("{at}: the name is used twice"));
            }
            if self.issuers[..i].iter().any(|o| o.issuer == issuer.issuer) {
                return Err(format!("{at}: issuer {:?} is listed twice", issuer.issuer));
            }
            if !is_https_url(&issuer.issuer) {
                return Err(format!("{at}: issuer must be an https:// URL"));
            }
            if !issuer.jwks_uri.is_empty() && !is_https_url(&issuer.jwks_uri) {
                return Err(format!(
                    "{at}: jwks_uri must be an https:// URL (or empty for discovery)"
                ));
            }
            if issuer.audience.is_empty() {
                return Err(format!("{at}: audience is required"));
            }
            if issuer.algorithms.is_empty() {
                return Err(format!("{at}: algorithms must name at least one"));
            }
            if let Some(bad) = issuer
                .algorithms
                .iter()
                .find(|a| VerifyAlgorithm::from_name(a).is_none())
            {
                return Err(format!(
                    "{at}: algorithm {bad:?} is not accepted (EdDSA, ES256, RS256, PS256; \
                     never none or HMAC)"
                ));
            }
            if !(60..=86_400).contains(&issuer.max_token_age_secs) {
                return Err(format!(
                    "{at}: max_token_age_secs must be between 60 and 86400"
                ));
            }
        }
        Ok(())
    }

    /// The issuer named `name`.
    pub fn issuer(&self, name: &str) -> Option<&TrustedIssuerConfig> {
        self.issuers.iter().find(|i| i.name == name)
    }
}

fn is_https_url(text: &str) -> bool {
    url::Url::parse(text).is_ok_and(|u| {
        u.scheme() == "https"
            && u.host().is_some()
            && u.username().is_empty()
            && u.password().is_none()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer(name: &str) -> TrustedIssuerConfig {
        TrustedIssuerConfig {
            name: name.into(),
            issuer: format!("https://{name}.test"),
            jwks_uri: String::new(),
            audience: "auth-server".into(),
            algorithms: default_algorithms(),
            max_token_age_secs: 3_600,
        }
    }

    fn check(issuers: Vec<TrustedIssuerConfig>) -> Result<(), String> {
        FederationConfig {
            issuers,
            ..FederationConfig::default()
        }
        .check()
    }

    #[test]
    fn good_issuers_pass() {
        assert_eq!(check(vec![issuer("k8s"), issuer("spiffe")]), Ok(()));
    }

    #[test]
    fn each_bad_setting_is_named() {
        type Spoil = fn(&mut TrustedIssuerConfig);
        let cases: [(&str, Spoil); 7] = [
            ("name must be", |i| i.name = "Bad Name".into()),
            ("issuer must be an https", |i| {
                i.issuer = "http://k8s.test".into()
            }),
            ("jwks_uri must be", |i| {
                i.jwks_uri = "http://k8s.test/keys".into()
            }),
            ("audience is required", |i| i.audience.clear()),
            ("at least one", |i| i.algorithms.clear()),
            ("\"HS256\" is not accepted", |i| {
                i.algorithms = vec!["HS256".into()]
            }),
            ("max_token_age_secs", |i| i.max_token_age_secs = 5),
        ];
        for (expected, spoil) in cases {
            let mut bad = issuer("k8s");
            spoil(&mut bad);
            let err = check(vec![bad]).unwrap_err();
            assert!(err.contains(expected), "{expected}: {err}");
        }
    }

    #[test]
    fn names_and_issuers_are_unique() {
        let err = check(vec![issuer("k8s"), issuer("k8s")]).unwrap_err();
        assert!(err.contains("used twice"), "{err}");
        let mut other = issuer("other");
        other.issuer = issuer("k8s").issuer;
        let err = check(vec![issuer("k8s"), other]).unwrap_err();
        assert!(err.contains("listed twice"), "{err}");
    }
}
