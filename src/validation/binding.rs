//! Is a bound token presented by its holder? A token bound to a DPoP key
//! (`cnf.jkt`) needs a proof by that key for the resource server's request;
//! a token bound to a certificate (`cnf.x5t#S256`) needs the thumbprint of
//! the certificate the resource server saw on its connection. Checked on
//! every validation, cache hit or not: the cache keeps the claims, never a
//! decision about a presentation.

use subtle::ConstantTimeEq;

use crate::domain::dpop::{ProofError, ProofTarget};
use crate::domain::endpoint::NormalizedUrl;
use crate::domain::token::Confirmation;
use crate::dpop::{DpopChecker, DpopError};

/// How the resource server says the token reached it.
#[derive(Debug, Clone, Copy)]
pub struct Presentation<'a> {
    /// The access token.
    pub token: &'a str,
    /// The `DPoP` header value the resource server received.
    pub dpop_proof: Option<&'a str>,
    /// base64url SHA-256 of the client certificate it saw.
    pub certificate_thumbprint: Option<&'a str>,
    /// Its request: method and URL, which the proof must name.
    pub request: Option<(&'a str, &'a NormalizedUrl)>,
}

/// Why a bound token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    /// Bound to a certificate; none or another was presented.
    #[error("the token is bound to another client certificate")]
    CertificateMismatch,
    /// Bound to a DPoP key; no proof was presented.
    #[error("the token is bound to a DPoP key and no proof came with it")]
    ProofMissing,
    /// Bound to a DPoP key; the request the proof must match is unknown
    /// (no `endpoint_url`).
    #[error("a DPoP proof is checked against endpoint_url, which is missing")]
    RequestMissing,
    /// The proof is refused.
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// The replay window is full; nothing was decided about the proof.
    #[error("too many DPoP proofs in the replay window")]
    ReplayWindowFull,
}

impl BindingError {
    /// A label for logs and metrics (bounded: one per kind).
    pub fn name(self) -> &'static str {
        match self {
            Self::CertificateMismatch => "certificate_mismatch",
            Self::ProofMissing => "dpop_missing",
            Self::RequestMissing => "dpop_without_request",
            Self::Proof(e) => e.name(),
            Self::ReplayWindowFull => "dpop_replay_window_full",
        }
    }
}

/// Checks `presented` against the token's `cnf` at `now`. A token bound to
/// nothing passes whatever came with it.
pub fn check_binding(
    cnf: Option<&Confirmation>,
    presented: &Presentation<'_>,
    dpop: &DpopChecker,
    now: i64,
) -> Result<(), BindingError> {
    let Some(cnf) = cnf else {
        return Ok(());
    };
    if let Some(bound) = &cnf.x5t_s256 {
        let matches = presented
            .certificate_thumbprint
            .is_some_and(|seen| bool::from(seen.as_bytes().ct_eq(bound.as_bytes())));
        if !matches {
            return Err(BindingError::CertificateMismatch);
        }
    }
    if let Some(bound) = &cnf.jkt {
        let proof = presented.dpop_proof.ok_or(BindingError::ProofMissing)?;
        let (method, url) = presented.request.ok_or(BindingError::RequestMissing)?;
        let target = ProofTarget {
            method,
            url,
            access_token: Some(presented.token),
        };
        let checked = dpop.check(proof, &target, now).map_err(|e| match e {
            DpopError::Proof(e) => BindingError::Proof(e),
            DpopError::ReplayWindowFull => BindingError::ReplayWindowFull,
        })?;
        if checked.jkt != *bound {
            return Err(ProofError::WrongKey.into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::dpop::ProofWindow;
    use crate::domain::endpoint::normalize_url;

    const NOW: i64 = 1_800_000_000;

    fn checker() -> DpopChecker {
        DpopChecker::new(
            ProofWindow {
                max_age_secs: 60,
                future_skew_secs: 5,
            },
            16,
        )
    }

    fn presented<'a>(
        thumbprint: Option<&'a str>,
        proof: Option<&'a str>,
        request: Option<(&'a str, &'a NormalizedUrl)>,
    ) -> Presentation<'a> {
        Presentation {
            token: "t",
            dpop_proof: proof,
            certificate_thumbprint: thumbprint,
            request,
        }
    }

    #[test]
    fn an_unbound_token_passes_whatever_comes_with_it() {
        let url = normalize_url("https://api.test/x").unwrap();
        let anything = presented(Some("x"), Some("not a proof"), Some(("GET", &url)));
        assert_eq!(check_binding(None, &anything, &checker(), NOW), Ok(()));
    }

    #[test]
    fn a_certificate_bound_token_needs_that_thumbprint() {
        let cnf = Confirmation {
            jkt: None,
            x5t_s256: Some("abc".into()),
        };
        let check = |thumbprint| {
            check_binding(
                Some(&cnf),
                &presented(thumbprint, None, None),
                &checker(),
                NOW,
            )
        };
        assert_eq!(check(Some("abc")), Ok(()));
        assert_eq!(check(Some("abd")), Err(BindingError::CertificateMismatch));
        assert_eq!(check(None), Err(BindingError::CertificateMismatch));
    }

    #[test]
    fn a_key_bound_token_needs_a_proof_and_the_request_it_names() {
        let cnf = Confirmation {
            jkt: Some("k".into()),
            x5t_s256: None,
        };
        let url = normalize_url("https://api.test/x").unwrap();
        let check = |p: &Presentation<'_>| check_binding(Some(&cnf), p, &checker(), NOW);
        assert_eq!(
            check(&presented(None, None, Some(("GET", &url)))),
            Err(BindingError::ProofMissing)
        );
        assert_eq!(
            check(&presented(None, Some("a.b.c"), None)),
            Err(BindingError::RequestMissing)
        );
        assert_eq!(
            check(&presented(None, Some("a.b.c"), Some(("GET", &url)))),
            Err(BindingError::Proof(ProofError::Malformed))
        );
    }
}
